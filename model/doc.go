// Package model owns crops in, probabilities out: the model manifest that
// makes a model file self-describing, ONNX inference through OpenCV's dnn
// module, and evaluation metrics. model/train/ holds the Python training
// pipeline; the shipped model files live beside it.
//
// It knows nothing of devices or storage.
package model
