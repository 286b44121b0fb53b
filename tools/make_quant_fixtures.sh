#!/bin/sh
# Regenerates Tests/QuantTests/Fixtures: two of the tiny random-weight timm exports made by
# tools/make_onnx_fixtures.py (a ViT at opset 17 and a ResNet at opset 13). Run that script first.
set -e
cd "$(dirname "$0")/.."
mkdir -p Tests/QuantTests/Fixtures
cp Tests/ONNXGraphTests/Fixtures/vit_ts17.onnx Tests/ONNXGraphTests/Fixtures/resnet_ts13.onnx Tests/QuantTests/Fixtures/
