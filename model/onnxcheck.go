package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// OpenCV aborts the whole process on an ONNX file it cannot import, so a
// model is read here first, at the protobuf wire level, and refused unless
// it is a well-formed ONNX graph made only of operators OpenCV 4.6 imports.
// (Its sha256 is checked too; this catches a manifest and model replaced
// together, or a model exported with something OpenCV cannot run.)

// onnxGraph is what the check learns about a model.
type onnxGraph struct {
	IRVersion uint64
	Opset     uint64 // default ("" or "ai.onnx") domain
	Inputs    []string
	Outputs   []string
	Ops       []string // op_type of every node, in order
	Inits     int      // initializers (weights)
}

// supportedOps are the ONNX operators the training code exports that
// OpenCV 4.6's importer handles (checked by loading each architecture).
var supportedOps = []string{
	"Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Gemm",
	"MatMul", "Add", "Mul", "Softmax", "Reshape", "Identity", "Dropout", "Constant", "Shape", "Gather",
	"Unsqueeze", "Concat",
}

const maxONNXNodes = 10000

var errNotONNX = errors.New("not an ONNX model file")

// parseONNX reads the parts of an ONNX ModelProto the check needs. It never
// panics and rejects anything malformed.
func parseONNX(data []byte) (*onnxGraph, error) {
	g := &onnxGraph{}
	haveGraph := false
	err := walkProto(data, func(field int, wire int, v uint64, b []byte) error {
		switch {
		case field == 1 && wire == 0:
			g.IRVersion = v
		case field == 8 && wire == 2:
			var domain string
			var version uint64
			if err := walkProto(b, func(f, w int, v uint64, b []byte) error {
				switch {
				case f == 1 && w == 2:
					domain = string(b)
				case f == 2 && w == 0:
					version = v
				}
				return nil
			}); err != nil {
				return err
			}
			if domain == "" || domain == "ai.onnx" {
				g.Opset = version
			}
		case field == 7 && wire == 2:
			haveGraph = true
			return parseGraph(b, g)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotONNX, err)
	}
	if !haveGraph || len(g.Ops) == 0 {
		return nil, fmt.Errorf("%w: no graph", errNotONNX)
	}
	return g, nil
}

func parseGraph(data []byte, g *onnxGraph) error {
	return walkProto(data, func(field, wire int, v uint64, b []byte) error {
		if wire != 2 {
			return nil
		}
		switch field {
		case 1: // node
			if len(g.Ops) >= maxONNXNodes {
				return fmt.Errorf("more than %d nodes", maxONNXNodes)
			}
			op := ""
			if err := walkProto(b, func(f, w int, v uint64, b []byte) error {
				if f == 4 && w == 2 {
					op = string(b)
				}
				return nil
			}); err != nil {
				return err
			}
			g.Ops = append(g.Ops, op)
		case 5:
			g.Inits++
		case 11, 12: // input, output: ValueInfoProto, name is field 1
			name := ""
			if err := walkProto(b, func(f, w int, v uint64, b []byte) error {
				if f == 1 && w == 2 {
					name = string(b)
				}
				return nil
			}); err != nil {
				return err
			}
			if field == 11 {
				g.Inputs = append(g.Inputs, name)
			} else {
				g.Outputs = append(g.Outputs, name)
			}
		}
		return nil
	})
}

// walkProto calls fn for every field of a protobuf message: v holds a
// varint or fixed value, b a length-delimited one.
func walkProto(data []byte, fn func(field, wire int, v uint64, b []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("bad field key")
		}
		data = data[n:]
		field, wire := int(key>>3), int(key&7)
		if field == 0 {
			return errors.New("field number 0")
		}
		var v uint64
		var b []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(data)
			if n <= 0 {
				return errors.New("bad varint")
			}
			data = data[n:]
		case 1:
			if len(data) < 8 {
				return errors.New("truncated fixed64")
			}
			v, data = binary.LittleEndian.Uint64(data), data[8:]
		case 2:
			l, n := binary.Uvarint(data)
			if n <= 0 || l > uint64(len(data)-n) {
				return errors.New("truncated field")
			}
			b, data = data[n:n+int(l)], data[n+int(l):]
		case 5:
			if len(data) < 4 {
				return errors.New("truncated fixed32")
			}
			v, data = uint64(binary.LittleEndian.Uint32(data)), data[4:]
		default:
			return fmt.Errorf("unsupported wire type %d", wire)
		}
		if err := fn(field, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}

// checkONNX checks a parsed model against its manifest.
func checkONNX(g *onnxGraph, m *Manifest) error {
	if g.IRVersion < 3 || g.IRVersion > 9 {
		return fmt.Errorf("ONNX IR version %d; OpenCV 4.6 reads 3 to 9", g.IRVersion)
	}
	if g.Opset != uint64(m.Opset) {
		return fmt.Errorf("ONNX opset %d, but the manifest says %d", g.Opset, m.Opset)
	}
	for _, op := range g.Ops {
		if !slices.Contains(supportedOps, op) {
			return fmt.Errorf("ONNX operator %q is not one this appliance's OpenCV can run", op)
		}
	}
	if !slices.Contains(g.Inputs, m.InputName) {
		return fmt.Errorf("ONNX graph has no input %q (inputs %q)", m.InputName, g.Inputs)
	}
	want := []string{m.OutputName}
	if m.Operating.OOD != nil {
		want = append(want, m.Operating.OOD.Output)
	}
	for _, o := range want {
		if !slices.Contains(g.Outputs, o) {
			return fmt.Errorf("ONNX graph has no output %q (outputs %q)", o, g.Outputs)
		}
	}
	return nil
}
