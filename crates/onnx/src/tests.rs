//! Unit tests on models built in memory with the proto structs (encoded by prost),
//! hand-written protobuf bytes, truncated and garbage input, and external data.

#![allow(clippy::unwrap_used)]

use super::*;
use proto::*;

fn f32_tensor(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: elem_type::FLOAT,
        raw_data: Some(vals.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}

fn value(name: &str, dims: Vec<Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: 1, shape: Some(TensorShapeProto { dim: dims }) }),
        }),
    }
}

fn model(graph: GraphProto, opset: i64) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "pytorch".into(),
        producer_version: "2.15.0".into(),
        graph: Some(graph),
        functions: vec![],
    }
}

/// conv(x, w, b) -> relu -> y, with w and b initializers also listed as inputs (as
/// older exporters do).
fn conv_model() -> ModelProto {
    let w = f32_tensor("w", &[2, 1, 1, 1], &[0.5, -2.0]);
    let b = TensorProto {
        name: "b".into(),
        dims: vec![2],
        data_type: elem_type::FLOAT,
        float_data: vec![1.0, 2.0],
        ..Default::default()
    };
    let conv = NodeProto {
        input: vec!["x".into(), "w".into(), "b".into()],
        output: vec!["h".into()],
        name: "conv1".into(),
        op_type: "Conv".into(),
        attribute: vec![attr_int("group", 1), attr_ints("pads", &[0, 0, 0, 0])],
        ..Default::default()
    };
    let relu = NodeProto {
        input: vec!["h".into()],
        output: vec!["y".into()],
        name: "relu1".into(),
        op_type: "Relu".into(),
        ..Default::default()
    };
    let batch = Dimension { dim_value: None, dim_param: Some("batch".into()) };
    let known = |k| Dimension { dim_value: Some(k), dim_param: None };
    model(
        GraphProto {
            node: vec![conv, relu],
            name: "g".into(),
            initializer: vec![w, b],
            input: vec![value("x", vec![batch, known(1), known(3), known(3)]), value("w", vec![]), value("b", vec![])],
            output: vec![value("y", vec![Dimension::default()])],
            ..Default::default()
        },
        17,
    )
}

#[test]
fn parses_a_conv_model() {
    let bytes = conv_model().encode_to_vec();
    let m = parse(&bytes, None).unwrap();
    assert_eq!((m.ir_version, m.opset), (8, 17));
    assert_eq!(m.producer_name, "pytorch");
    let g = &m.graph;
    assert_eq!(g.op_types(), ["Conv", "Relu"]);
    assert_eq!(g.inputs.len(), 1, "initializers are not graph inputs");
    assert_eq!(g.inputs[0].dims, [Dim::Param("batch".into()), Dim::Known(1), Dim::Known(3), Dim::Known(3)]);
    assert_eq!(g.outputs[0].dims, [Dim::Unknown]);
    let w = g.initializer("w").unwrap();
    assert_eq!(w.dims, [2, 1, 1, 1]);
    assert_eq!(w.to_f64(), [0.5, -2.0]);
    assert_eq!(g.initializer("b").unwrap().data, TensorData::F32(vec![1.0, 2.0]));
    let names: Vec<_> = g.initializers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w", "b"], "file order");
    let conv = &g.nodes[0];
    assert_eq!(conv.int("group", 7).unwrap(), 1);
    assert_eq!(conv.int("missing", 7).unwrap(), 7);
    assert_eq!(conv.ints("pads").unwrap(), Some(&[0i64, 0, 0, 0][..]));
    assert_eq!(conv.input(2), Some("b"));
    assert_eq!(conv.input(3), None);
}

#[test]
fn attribute_of_the_wrong_kind_names_node_and_attribute() {
    let m = parse(&conv_model().encode_to_vec(), None).unwrap();
    let e = m.graph.nodes[0].ints("group").unwrap_err();
    assert_eq!(e.to_string(), "node 'conv1' (Conv): attribute 'group': expected ints, found int");
    let e = m.graph.nodes[1].ints_req("perm").unwrap_err();
    assert!(e.to_string().contains("'perm': required, missing"), "{e}");
}

#[test]
fn omitted_optional_input_is_an_empty_name() {
    let mut m = conv_model();
    let g = m.graph.as_mut().unwrap();
    g.node[0].input[2] = String::new();
    let m = parse(&m.encode_to_vec(), None).unwrap();
    assert_eq!(m.graph.nodes[0].inputs.len(), 3);
    assert_eq!(m.graph.nodes[0].input(2), None);
}

#[test]
fn hand_written_bytes_parse() {
    // ir_version 7; opset_import { version 13 }; graph { node { op_type "Relu" } }
    let bytes = [
        0x08, 0x07, // field 1 varint 7
        0x42, 0x02, 0x10, 0x0d, // field 8 len 2: field 2 varint 13
        0x3a, 0x08, // field 7 len 8: graph
        0x0a, 0x06, // field 1 len 6: node
        0x22, 0x04, b'R', b'e', b'l', b'u', // field 4 len 4: op_type
    ];
    let m = parse(&bytes, None).unwrap();
    assert_eq!((m.ir_version, m.opset), (7, 13));
    assert_eq!(m.graph.op_types(), ["Relu"]);
}

#[test]
fn truncated_garbage_and_empty_inputs_are_one_line_errors() {
    let bytes = conv_model().encode_to_vec();
    for cut in [1, 2, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let e = parse_named(&bytes[..cut], "m.onnx", None).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        assert!(s.starts_with("m.onnx: "), "{s}");
        assert!(matches!(e.kind, ErrorKind::Truncated(_) | ErrorKind::NotOnnx(_)), "cut {cut}: {s}");
    }
    let e = parse_named(&bytes[..bytes.len() / 2], "m.onnx", None).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    let e = parse(b"not a model\n", None).unwrap_err();
    assert!(e.to_string().starts_with("<bytes>: not an ONNX model"), "{e}");
    let e = parse(b"", None).unwrap_err();
    assert_eq!(e.to_string(), "<bytes>: not an ONNX model: the file is empty");
}

#[test]
fn opset_outside_range_is_refused() {
    let mut m = conv_model();
    m.opset_import[0].version = 9;
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("opset 9 of the default ONNX domain"), "{e}");
    m.opset_import[0].domain = "com.microsoft".into();
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::NoOpset), "{e}");
}

#[test]
fn tensor_size_mismatch_and_bad_dtype_name_the_tensor() {
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![3, 1, 1, 1];
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert_eq!(e.to_string(), "<bytes>: tensor 'w': shape [3, 1, 1, 1] needs 12 bytes of FLOAT, the data has 8");
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[1].dims = vec![5];
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("tensor 'b': shape [5] needs 5 elements"), "{e}");
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[0].data_type = 8;
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("tensor 'w': data type STRING is not supported"), "{e}");
    // A huge claimed shape is refused before anything is allocated for it.
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![1 << 31, 1 << 31, 1 << 31];
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("is too large"), "{e}");
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer[0].dims = vec![-1];
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("negative dimension -1"), "{e}");
}

#[test]
fn typed_fields_for_every_dtype() {
    let cases: Vec<(TensorProto, Vec<f64>)> = vec![
        (
            TensorProto { data_type: elem_type::INT64, dims: vec![2], int64_data: vec![-1, 5], ..Default::default() },
            vec![-1.0, 5.0],
        ),
        (
            TensorProto { data_type: elem_type::DOUBLE, dims: vec![1], double_data: vec![0.25], ..Default::default() },
            vec![0.25],
        ),
        (
            TensorProto {
                data_type: elem_type::FLOAT16,
                dims: vec![3],
                int32_data: vec![0x3c00, 0xc000, 0x3555],
                ..Default::default()
            },
            vec![1.0, -2.0, 0.333_251_953_125],
        ),
        (
            TensorProto { data_type: elem_type::INT8, dims: vec![], int32_data: vec![-3], ..Default::default() },
            vec![-3.0],
        ),
        (
            TensorProto { data_type: elem_type::BOOL, dims: vec![2], raw_data: Some(vec![1, 0]), ..Default::default() },
            vec![1.0, 0.0],
        ),
        (
            TensorProto {
                data_type: elem_type::INT32,
                dims: vec![2],
                raw_data: Some([7i32, -8].iter().flat_map(|v| v.to_le_bytes()).collect()),
                ..Default::default()
            },
            vec![7.0, -8.0],
        ),
    ];
    for (mut t, want) in cases {
        t.name = "t".into();
        let mut m = conv_model();
        m.graph.as_mut().unwrap().initializer.push(t);
        let m = parse(&m.encode_to_vec(), None).unwrap();
        let t = m.graph.initializer("t").unwrap();
        assert_eq!(t.to_f64(), want);
    }
    let mut m = conv_model();
    m.graph.as_mut().unwrap().initializer.push(TensorProto {
        name: "bad".into(),
        data_type: elem_type::INT8,
        dims: vec![1],
        int32_data: vec![300],
        ..Default::default()
    });
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("tensor 'bad': int32_data value out of range"), "{e}");
}

#[test]
fn constant_tensor_attribute_and_to_i64() {
    let mut m = conv_model();
    m.graph.as_mut().unwrap().node.push(NodeProto {
        output: vec!["shape".into()],
        name: "c".into(),
        op_type: "Constant".into(),
        attribute: vec![AttributeProto {
            name: "value".into(),
            r#type: 4,
            t: Some(TensorProto {
                data_type: elem_type::INT64,
                dims: vec![2],
                int64_data: vec![-1, 40],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    });
    let m = parse(&m.encode_to_vec(), None).unwrap();
    let t = m.graph.nodes[2].tensor("value").unwrap().unwrap();
    assert_eq!(t.to_i64(), Some(vec![-1, 40]));
    assert_eq!(m.graph.initializer("w").unwrap().to_i64(), None);
}

#[test]
fn duplicate_initializer_is_refused() {
    let mut m = conv_model();
    let g = m.graph.as_mut().unwrap();
    let w = g.initializer[0].clone();
    g.initializer.push(w);
    let e = parse(&m.encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("initializer 'w' is given twice"), "{e}");
}

fn external(location: &str, offset: Option<u64>, length: Option<u64>) -> ModelProto {
    let mut m = conv_model();
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    w.raw_data = None;
    w.data_location = 1;
    let kv = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
    w.external_data.push(kv("location", location.into()));
    if let Some(o) = offset {
        w.external_data.push(kv("offset", o.to_string()));
    }
    if let Some(l) = length {
        w.external_data.push(kv("length", l.to_string()));
    }
    m
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("triad-onnx-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn external_data_is_read_relative_to_the_model() {
    let d = temp_dir("ext");
    let mut data = vec![0xffu8; 16];
    data.extend([0.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(d.join("m.onnx.data"), &data).unwrap();
    std::fs::write(d.join("m.onnx"), external("m.onnx.data", Some(16), Some(8)).encode_to_vec()).unwrap();
    let m = load(d.join("m.onnx")).unwrap();
    assert_eq!(m.graph.initializer("w").unwrap().to_f64(), [0.5, -2.0]);

    let check = |m: ModelProto, want: &str| {
        std::fs::write(d.join("bad.onnx"), m.encode_to_vec()).unwrap();
        let e = load(d.join("bad.onnx")).unwrap_err().to_string();
        assert!(e.contains(want), "{e} does not contain {want}");
        assert!(e.contains("bad.onnx: tensor 'w'"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    };
    check(external("gone.data", None, None), "external data file 'gone.data' (");
    check(external("gone.data", None, None), "gone.data): not found");
    check(external("m.onnx.data", Some(20), None), "lie beyond its end (24 bytes)");
    check(external("m.onnx.data", Some(u64::MAX), None), "lie beyond its end");
    check(external("m.onnx.data", Some(0), Some(4)), "length 4 does not match the tensor's 8 bytes");
    check(external("../m.onnx.data", None, None), "must be a relative path");
    check(external("/etc/passwd", None, None), "must be a relative path");
    check(external("", None, None), "must be a relative path");
    let e = parse(&external("m.onnx.data", None, None).encode_to_vec(), None).unwrap_err();
    assert!(e.to_string().contains("no folder to find it in"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn missing_model_file_names_it() {
    let e = load("/nonexistent/model.onnx").unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/model.onnx: cannot read the file"), "{e}");
}

#[test]
fn every_prefix_and_bit_flip_of_a_model_is_handled() {
    let bytes = conv_model().encode_to_vec();
    for cut in 0..bytes.len() {
        let _ = parse(&bytes[..cut], None);
    }
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let _ = parse(&b, None);
        }
    }
}

/// A node named after its operator (`Reshape` is `reshape`).
fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: op.to_lowercase(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

/// The import of a model of input `x` (`[N, ...sample]`) through `nodes` to the last
/// node's first output, with the initializers `inits`.
fn import_nodes(sample: &[i64], nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> Result<Imported, ImportError> {
    let mut dims = vec![Dimension { dim_value: None, dim_param: Some("N".into()) }];
    dims.extend(sample.iter().map(|&k| Dimension { dim_value: Some(k), dim_param: None }));
    let out = nodes.last().unwrap().output[0].clone();
    let graph = GraphProto {
        node: nodes,
        name: "g".into(),
        initializer: inits,
        input: vec![value("x", dims)],
        output: vec![value(&out, vec![Dimension::default()])],
        ..Default::default()
    };
    import(&parse(&model(graph, 17).encode_to_vec(), None).unwrap(), "m.onnx")
}

/// Identity and Dropout (no mask output) pass their input through; `x * 2` and `x / 4`
/// are public multipliers, and `1 - x` is `(-1)·x + 1`: no secret tensor for any.
#[test]
fn passthrough_and_public_scalars_import() {
    let scalar = |name: &str, v: f32| f32_tensor(name, &[], &[v]);
    let im = import_nodes(
        &[4],
        vec![
            node("Identity", &["x"], &["a"], vec![]),
            node("Dropout", &["a"], &["b", ""], vec![]),
            node("Mul", &["b", "two"], &["c"], vec![]),
            node("Div", &["c", "four"], &["d"], vec![]),
            node("Sub", &["one", "d"], &["y"], vec![]),
        ],
        vec![scalar("two", 2.0), scalar("four", 4.0), scalar("one", 1.0)],
    )
    .unwrap();
    let k = |v: f64| triad_layers::Constant { dims: vec![1], values: vec![v] };
    let ops: Vec<&triad_layers::Op> = im.graph.nodes[1..].iter().map(|n| &n.op).collect();
    use triad_layers::Op::{AddConst, MulConst};
    assert_eq!(ops, [&MulConst(k(2.0)), &MulConst(k(0.25)), &MulConst(k(-1.0)), &AddConst(k(1.0))]);
    assert!(im.weights.is_empty(), "public scalars became secret tensors: {:?}", im.weights);
}

/// What the importer refuses, each one line naming the node: among them a reshape whose
/// target shape is computed from the model's input at run time.
#[test]
fn refused_imports_are_one_line_naming_the_node() {
    let img = [1, 4, 4];
    let w = f32_tensor("w", &[1, 1, 1, 1], &[1.0]);
    let one = |op: &str, ins: &[&str], attrs: Vec<AttributeProto>| vec![node(op, ins, &["y"], attrs)];
    let k22 = || attr_ints("kernel_shape", &[2, 2]);
    type Case<'a> = (&'a [i64], Vec<NodeProto>, Vec<TensorProto>, &'a str);
    let cases: Vec<Case> = vec![
        (
            &[4],
            vec![node("Relu", &["x"], &["h"], vec![]), node("Reshape", &["h", "x"], &["y"], vec![])],
            vec![],
            "node 'reshape' (Reshape): the target shape is computed at run time (a dynamic reshape)",
        ),
        (
            &[4],
            vec![node("Dropout", &["x"], &["y", "mask"], vec![])],
            vec![],
            "the dropout mask output is not supported",
        ),
        (
            &img,
            one("Conv", &["x", "w"], vec![attr_ints("dilations", &[2, 2])]),
            vec![w],
            "node 'conv' (Conv): dilated convolutions are not supported",
        ),
        (&img, one("MaxPool", &["x"], vec![k22(), attr_ints("dilations", &[1, 2])]), vec![], "dilated pooling"),
        (&img, one("AveragePool", &["x"], vec![k22(), attr_int("ceil_mode", 1)]), vec![], "ceil_mode = 1"),
        (&[4], one("Softmax", &["x"], vec![attr_int("axis", 0)]), vec![], "softmax is supported over the features"),
        (&img, one("Softmax", &["x"], vec![attr_int("axis", 1)]), vec![], "softmax is supported over the features"),
        (&img, one("ReduceMean", &["x"], vec![attr_ints("axes", &[1])]), vec![], "a mean over axes [1] is not"),
        (&img, one("ReduceMean", &["x"], vec![attr_ints("axes", &[-1])]), vec![], "a mean over axes [3] is not"),
        (&img, one("ReduceMean", &["x"], vec![]), vec![], "a mean over every axis is not supported"),
        (&[4], one("Mul", &["x", "x"], vec![]), vec![], "(Mul): a product of two computed values is not supported"),
    ];
    for (sample, nodes, inits, want) in cases {
        let e = import_nodes(sample, nodes, inits).unwrap_err().to_string();
        assert!(e.starts_with("m.onnx: node '") && e.contains(want), "{e:?} lacks {want:?}");
        assert!(!e.contains('\n'), "{e}");
    }
}
