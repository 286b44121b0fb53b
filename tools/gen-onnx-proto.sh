#!/usr/bin/env bash
# Regenerates Sources/OnnxProto/onnx.pb.swift from onnx.proto (proto2, package onnx).
# Needs: protoc (apt-get install protobuf-compiler), python3 with the onnx wheel (for onnx.proto),
# and builds protoc-gen-swift from the swift-protobuf version that Package.resolved pins (~40 s).
# The generated file is committed; builds never run protoc.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${WORK:-/tmp/onnx-proto-gen}"
VERSION="${SWIFT_PROTOBUF_VERSION:-$(python3 - "$ROOT/Package.resolved" <<'PY'
import json, sys
try:
    pins = json.load(open(sys.argv[1]))["pins"]
    print(next(p["state"]["version"] for p in pins if p["identity"] == "swift-protobuf"))
except Exception:
    print("1.39.0")
PY
)}"
command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler" >&2; exit 1; }
mkdir -p "$WORK"
if [ ! -d "$WORK/swift-protobuf" ]; then
  git clone -q https://github.com/apple/swift-protobuf "$WORK/swift-protobuf"
fi
git -C "$WORK/swift-protobuf" checkout -q "$VERSION"
(cd "$WORK/swift-protobuf" && swift build -c release --product protoc-gen-swift)
PLUGIN="$WORK/swift-protobuf/.build/release/protoc-gen-swift"
PROTO_DIR="$(python3 -c 'import onnx, os; print(os.path.dirname(onnx.__file__))')"
mkdir -p "$WORK/proto/onnx" "$WORK/out"
cp "$PROTO_DIR/onnx.proto" "$WORK/proto/onnx.proto"
protoc --plugin=protoc-gen-swift="$PLUGIN" --swift_out="$WORK/out" --swift_opt=Visibility=Public \
  -I"$WORK/proto" "$WORK/proto/onnx.proto"
cp "$WORK/out/onnx.pb.swift" "$ROOT/Sources/OnnxProto/onnx.pb.swift"
echo "wrote Sources/OnnxProto/onnx.pb.swift (swift-protobuf $VERSION, onnx $(python3 -c 'import onnx; print(onnx.__version__)'))"
