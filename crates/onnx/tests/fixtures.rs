//! Reads every fixture of `tests/fixtures/onnx/` (written by
//! `tools/onnx-fixtures/make.py` with both PyTorch exporters) and checks its structure;
//! every bad fixture gives its one-line error.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use triad_onnx::{load, Attr, Dim, ErrorKind, OnnxModel};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx")
}

fn open(name: &str) -> OnnxModel {
    load(dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn ops(m: &OnnxModel) -> String {
    m.graph.op_types().join(" ")
}

fn shape(m: &OnnxModel, name: &str) -> Vec<usize> {
    m.graph.initializer(name).unwrap_or_else(|| panic!("no initializer {name}")).dims.clone()
}

/// The Reshape's target shape, from a Constant node or an initializer.
fn reshape_target(m: &OnnxModel) -> Vec<i64> {
    let r = m.graph.nodes.iter().find(|n| n.op_type == "Reshape").unwrap();
    let src = r.input(1).unwrap();
    if let Some(t) = m.graph.initializer(src) {
        return t.to_i64().unwrap();
    }
    let c = m.graph.nodes.iter().find(|n| n.outputs.iter().any(|o| o == src)).unwrap();
    c.tensor("value").unwrap().unwrap().to_i64().unwrap()
}

const RES_TS: &str = "Sub Div Conv Relu Conv Relu Conv Add Relu MaxPool BatchNormalization \
    Conv Conv Relu Conv Add Relu GlobalAveragePool Flatten Gemm";
const RES_DYNAMO: &str = "Sub Div Conv Relu Conv Relu Conv Add Relu MaxPool BatchNormalization \
    Conv Conv Relu Conv Add Relu ReduceMean Reshape Gemm";
const OPS_TS: &str = "Conv Tanh Constant Constant ConstantOfShape Concat Constant Reshape \
    Constant Constant Constant Constant Slice Transpose Constant Reshape Cast Pad Conv Sigmoid \
    AveragePool Conv Relu AveragePool Constant Constant ConstantOfShape Concat Constant Reshape \
    Constant Constant Constant Constant Slice Transpose Constant Reshape Cast Pad Concat MaxPool \
    Constant Reshape Gemm Softmax";

#[test]
fn good_fixtures_have_the_expected_ops_and_opsets() {
    let want = [
        ("tiny_cnn_ts.onnx", 17, "Conv Relu MaxPool Flatten Gemm"),
        ("tiny_cnn_dynamo.onnx", 20, "Conv Relu MaxPool Reshape Gemm"),
        ("residual_cnn_ts.onnx", 17, RES_TS),
        ("residual_cnn_dynamo.onnx", 20, RES_DYNAMO),
        ("residual_mean_cnn_ts.onnx", 17, &RES_TS.replace("GlobalAveragePool Flatten", "ReduceMean")),
        ("residual_mean_cnn_dynamo.onnx", 20, &RES_DYNAMO.replace("ReduceMean Reshape", "ReduceMean")),
        ("ops_cnn_ts.onnx", 17, OPS_TS),
        (
            "ops_cnn_dynamo.onnx",
            20,
            "Conv Tanh Conv Sigmoid AveragePool Conv Relu AveragePool Pad Concat MaxPool \
             Reshape Gemm Softmax",
        ),
        ("mlp_ts.onnx", 13, "Gemm Relu MatMul Add"),
        ("mlp_dynamo.onnx", 20, "Gemm Relu MatMul Add"),
    ];
    for (file, opset, ops_want) in want {
        let m = open(file);
        let ops_want = ops_want.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(ops(&m), ops_want, "{file}");
        assert_eq!(m.opset, opset, "{file}");
        assert_eq!(m.producer_name, "pytorch", "{file}");
        assert_eq!(m.graph.inputs.len(), 1, "{file}: initializers left out");
        assert_eq!(m.graph.inputs[0].dims[0], Dim::Known(4), "{file}");
        assert_eq!(m.graph.outputs.len(), 1, "{file}");
        for n in &m.graph.nodes {
            assert_eq!(n.domain, "", "{file}: {}", n.name);
        }
    }
}

#[test]
fn initializer_shapes_and_external_data() {
    for exporter in ["ts", "dynamo"] {
        let m = open(&format!("tiny_cnn_{exporter}.onnx"));
        assert_eq!(shape(&m, "fc.weight"), [10, 144]);
        assert_eq!(shape(&m, "fc.bias"), [10]);
        let conv = &m.graph.nodes[0];
        let w = m.graph.initializer(conv.input(1).unwrap()).unwrap();
        assert_eq!(w.dims, [4, 1, 5, 5], "{exporter}");
        assert_eq!(conv.ints("strides").unwrap(), Some(&[2i64, 2][..]));
        let v = w.to_f64();
        assert!(v.iter().all(|x| x.is_finite() && x.abs() < 1.0), "{exporter}");
        assert!(v.iter().any(|&x| x != 0.0), "{exporter}: weights read");
    }
    // The dynamo file's weights live in its .data file: the same values as the
    // TorchScript file's, which holds them inline.
    let ts = open("tiny_cnn_ts.onnx");
    let dy = open("tiny_cnn_dynamo.onnx");
    assert_eq!(
        ts.graph.initializer("fc.weight").unwrap().to_f64(),
        dy.graph.initializer("fc.weight").unwrap().to_f64()
    );
    assert_eq!(reshape_target(&dy), [4, 144]);
    let m = open("residual_cnn_dynamo.onnx");
    assert_eq!(shape(&m, "mean"), [1, 3, 1, 1]);
    assert_eq!(shape(&m, "bn_pool.running_var"), [8]);
    assert_eq!(shape(&m, "fc.weight"), [5, 16]);
    assert_eq!(reshape_target(&m), [4, 16]);
    let bn = m.graph.nodes.iter().find(|n| n.op_type == "BatchNormalization").unwrap();
    assert!((bn.float("epsilon", 0.0).unwrap() - 1e-5).abs() < 1e-9);
    let mean = m.graph.nodes.iter().find(|n| n.op_type == "ReduceMean").unwrap();
    let axes = m.graph.initializer(mean.input(1).unwrap()).unwrap();
    assert_eq!(axes.to_i64(), Some(vec![-1, -2]), "opset 18+: axes as an input, negative");
    let m = open("residual_mean_cnn_ts.onnx");
    let mean = m.graph.nodes.iter().find(|n| n.op_type == "ReduceMean").unwrap();
    assert_eq!(mean.ints("axes").unwrap(), Some(&[2i64, 3][..]), "opset 17: attribute");
    assert_eq!(mean.int("keepdims", 1).unwrap(), 0);
    let m = open("ops_cnn_dynamo.onnx");
    let dw = m.graph.nodes.iter().find(|n| n.op_type == "Conv" && n.int("group", 1).unwrap() == 6).unwrap();
    assert_eq!(dw.ints("pads").unwrap(), Some(&[3i64, 2, 2, 1][..]), "F.pad folded");
    let first = &m.graph.nodes[0];
    assert_eq!(first.ints("kernel_shape").unwrap(), Some(&[3i64, 5][..]));
    assert_eq!(reshape_target(&m), [-1, 40]);
}

#[test]
fn unsupported_and_dynamic_models_parse_for_the_lowering_to_refuse() {
    let m = open("unsupported_op_ts.onnx");
    assert_eq!(ops(&m), "Gemm Erf");
    let m = open("dynamic_reshape_ts.onnx");
    assert_eq!(ops(&m), "Conv Relu Shape Constant Gather Constant Unsqueeze Constant Concat Reshape Gemm");
    assert_eq!(m.graph.inputs[0].dims[0], Dim::Param("batch".into()));
    let c = m.graph.nodes.iter().find(|n| n.op_type == "Constant").unwrap();
    assert!(matches!(c.attr("value"), Some(Attr::Tensor(_))));
}

#[test]
fn bad_fixtures_give_one_line_errors() {
    let e = load(dir().join("truncated.onnx")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    let e = load(dir().join("garbage.onnx")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NotOnnx(_)), "{e}");
    let e = load(dir().join("missing_data.onnx")).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("missing_data.onnx: tensor '") && s.contains("external data file 'missing_data.onnx.data' ("),
        "{s}"
    );
    assert!(s.ends_with("missing_data.onnx.data): not found (it must lie beside the model file)"), "{s}");
    for f in ["truncated.onnx", "garbage.onnx", "missing_data.onnx"] {
        let s = load(dir().join(f)).unwrap_err().to_string();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.contains(f), "{s}");
        println!("{s}");
    }
}
