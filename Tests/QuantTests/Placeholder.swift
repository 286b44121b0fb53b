import Testing
@testable import Quant

