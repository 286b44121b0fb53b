import SwiftProtobuf
// Generated ONNX protobuf types land here (tools/gen-onnx-proto.sh).
