//! Errors a user meets are one line `error: ...` on stderr and a non-zero exit code.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn missing_files() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["infer", "--weights", "/nonexistent/w.safetensors", "--samples", "1"],
            "cannot read /nonexistent/w.safetensors",
        ),
        (&["party", "--id", "0", "--config", "/nonexistent/parties.toml", "infer"], "/nonexistent/parties.toml"),
        // Every party misses its own file; the error is the first that failed on its own.
        (&["infer", "--resume", "/nonexistent/ck", "--samples", "1"], "cannot read /nonexistent/ck/party-"),
        (&["infer", "--model", "alexnet", "--data", "/nonexistent/cifar"], "/nonexistent/cifar"),
    ];
    for (args, needle) in cases {
        assert_one_error_line(&triad(args), needle);
    }
}

#[test]
fn mnist_images_of_the_wrong_size() {
    let dir = tempdir("mnist27");
    // Two 27x27 images and their labels, uncompressed IDX, for both splits.
    let idx = |dims: &[u32], data: &[u8]| -> Vec<u8> {
        let mut v = vec![0, 0, 0x08, dims.len() as u8];
        dims.iter().for_each(|d| v.extend(d.to_be_bytes()));
        v.extend(data);
        v
    };
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), idx(&[2, 27, 27], &[7; 2 * 27 * 27])).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), idx(&[2], &[3, 4])).unwrap();
    }
    let out = triad(&["infer", "--data", dir.to_str().unwrap(), "--samples", "1"]);
    assert_one_error_line(&out, "images are 27x27, MNIST's are 28x28");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_toml() {
    let dir = tempdir("badcfg");
    let cfg = dir.join("parties.toml");
    std::fs::write(&cfg, "session = \"x\"\nca = \"ca.pem\"\n[[party]]\nid = 0\naddress = 7000\n").unwrap();
    let out = triad(&["party", "--id", "0", "--config", cfg.to_str().unwrap(), "infer"]);
    assert_one_error_line(&out, "invalid config (line");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weights_that_do_not_fit_the_model() {
    let dir = tempdir("badweights");
    let w = dir.join("lenet.safetensors");
    let net = triad::models::ModelName::Lenet.net(triad::models::Shape::Mnist).unwrap();
    triad::weights::save_plain(&w, &net, &net.init_weights(1)).unwrap();
    // LeNet's weights for AlexNet: one line lists every misfit at once (a wrong shape, a
    // missing tensor, an unexpected one).
    let out = triad(&["infer", "--model", "alexnet", "--random", "--weights", w.to_str().unwrap()]);
    for part in [
        "does not fit model alexnet-cifar10-avg: 00_conv2d.weight has shape [20, 1, 5, 5], the model needs [64, 3, 11, 11]",
        "missing 06_conv2d.weight [384, 192, 3, 3]",
        "unexpected 07_linear.weight",
    ] {
        assert_one_error_line(&out, part);
    }
    // Not a safetensors file at all.
    std::fs::write(&w, b"garbage").unwrap();
    let out = triad(&["infer", "--weights", w.to_str().unwrap()]);
    assert_one_error_line(&out, "not a safetensors file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The LeNet whose first convolution's bias is 1e7 (loadable: the encoding limit
/// is about 4e12): it never runs to wrong logits. The owner's plaintext check stops it
/// before anything is shared, in one line naming the convolution; with `--guard` too.
#[test]
fn a_lenet_whose_products_would_wrap_is_refused_naming_the_layer() {
    let dir = tempdir("bigbias");
    let w = dir.join("lenet.safetensors");
    let net = triad::models::ModelName::Lenet.net(triad::models::Shape::Mnist).unwrap();
    let mut weights = net.init_weights(1);
    weights[1].iter_mut().for_each(|b| *b = 1e7);
    triad::weights::save_plain(&w, &net, &weights).unwrap();
    for extra in [&[][..], &["--guard"][..]] {
        let mut args = vec!["infer", "--weights", w.to_str().unwrap(), "--samples", "4"];
        args.extend_from_slice(extra);
        assert_one_error_line(&triad(&args), "at node 00_conv2d (conv2d): its output values reach 2^22");
    }
    let mut args = vec!["train", "--weights", w.to_str().unwrap(), "--steps", "1", "--batch", "4", "--samples", "0"];
    args.push("-q");
    assert_one_error_line(&triad(&args), "at node 00_conv2d (conv2d)");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SGD's public constants are checked before any party starts: a learning rate too small
/// for the fixed-point range, or a negative one, is one line naming the option.
#[test]
fn sgd_constants_that_do_not_survive_the_encoding_are_refused() {
    let args = |lr: &str| {
        triad(&["train", "--random", "--steps", "1", "--batch", "2", "--samples", "0", &format!("--lr={lr}")])
    };
    assert_one_error_line(
        &args("1e-13"),
        "--lr 0.0000000000001: the public constant 1e-13 encodes with a relative error",
    );
    assert_one_error_line(&args("-0.1"), "--lr -0.1: a finite value, not negative");
}

#[test]
fn port_in_use() {
    let dir = tempdir("port");
    let cfg = keygen(&dir, 2_000);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // Party 0's address becomes the port held above.
    let addr0 = text.lines().find(|l| l.starts_with("address")).unwrap().to_string();
    std::fs::write(&cfg, text.replacen(&addr0, &format!("address = \"127.0.0.1:{port}\""), 1)).unwrap();
    let out = triad(&["party", "--id", "0", "--config", cfg.to_str().unwrap(), "infer", "--samples", "1"]);
    assert_one_error_line(&out, &format!("cannot listen on 127.0.0.1:{port}"));
    drop(taken);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreachable_peer() {
    let dir = tempdir("unreach");
    let cfg = keygen(&dir, 30_000);
    let out = triad(&["party", "--id", "2", "--config", cfg.to_str().unwrap(), "--timeout-ms", "400", "infer"]);
    assert_one_error_line(&out, "cannot connect to party");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_bench_model() {
    let out = triad(&["bench", "--models", "lenet,gpt"]);
    assert_one_error_line(&out, "unknown model \"gpt\"");
}

#[test]
fn cuda_without_a_gpu_is_one_line() {
    let out = triad(&["infer", "--samples", "1", "--backend", "cuda"]);
    if !out.status.success() {
        assert_one_error_line(&out, "cuda backend: ");
    }
}
