import Testing
@testable import Int8Kernels

