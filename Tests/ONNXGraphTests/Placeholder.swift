import Testing
@testable import ONNXGraph

