// QModel and ONNXGraph both define `DType` (and the module QModel shares its name with its main struct, so
// `QModel.DType` does not resolve): this file imports only QModel and gives its types unambiguous names.
import QModel

typealias QDType = DType
typealias QTensorInfo = TensorInfo
typealias QConstant = Constant
typealias QClamp = Clamp
typealias QNetwork = QModel
