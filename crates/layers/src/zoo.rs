//! The model zoo: LeNet, AlexNet, VGG-16 and ResNet-50/101/152 with the paper's
//! adjustments (see `DESIGN.md`, "The paper's parameters and models").

use crate::graph::{Chain, ConvSpec, Graph, Op, PoolSpec};

/// The datasets of the paper, by input shape and class count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// 1x28x28, 10 classes.
    Mnist,
    /// 3x32x32, 10 classes.
    Cifar10,
    /// 3x64x64, 200 classes.
    TinyImageNet,
    /// 3x224x224, 1000 classes.
    ImageNet,
}

impl Dataset {
    /// Per-sample input shape `[C, H, W]`.
    pub fn input(self) -> Vec<usize> {
        match self {
            Dataset::Mnist => vec![1, 28, 28],
            Dataset::Cifar10 => vec![3, 32, 32],
            Dataset::TinyImageNet => vec![3, 64, 64],
            Dataset::ImageNet => vec![3, 224, 224],
        }
    }
    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Dataset::Mnist | Dataset::Cifar10 => 10,
            Dataset::TinyImageNet => 200,
            Dataset::ImageNet => 1000,
        }
    }
    /// A short name for model names.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::Cifar10 => "cifar10",
            Dataset::TinyImageNet => "tiny-imagenet",
            Dataset::ImageNet => "imagenet",
        }
    }
}

/// The activation of LeNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// ReLU (the paper's choice).
    Relu,
    /// tanh (the original LeNet).
    Tanh,
}

/// The pooling of a model: the paper replaces every max pool by an average pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Average pooling (the paper).
    Avg,
    /// Max pooling (the original models).
    Max,
}

fn conv(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> Op {
    Op::Conv(ConvSpec::square(in_c, out_c, k, stride, pad, true))
}

fn conv_nb(in_c: usize, out_c: usize, k: usize, stride: usize, pad: usize) -> Op {
    Op::Conv(ConvSpec::square(in_c, out_c, k, stride, pad, false))
}

fn fc(inp: usize, out: usize) -> Op {
    Op::Linear { inp, out, bias: true }
}

fn pool(p: Pooling, k: usize, stride: usize, pad: usize) -> Op {
    match p {
        Pooling::Avg => Op::AvgPool(PoolSpec::square(k, stride, pad)),
        Pooling::Max => Op::MaxPool(PoolSpec::square(k, stride, pad)),
    }
}

fn act(a: Activation) -> Op {
    match a {
        Activation::Relu => Op::Relu,
        Activation::Tanh => Op::Tanh,
    }
}

fn pool_name(p: Pooling) -> &'static str {
    match p {
        Pooling::Avg => "avg",
        Pooling::Max => "max",
    }
}

fn act_name(a: Activation) -> &'static str {
    match a {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
    }
}

/// The zoo's graphs always fit their inputs (the tests build every one); one that did
/// not would come back without nodes, named with the error, so that building a model of
/// it fails with that line.
fn done(c: Chain) -> Graph {
    c.finish().unwrap_or_else(|e| Graph { name: format!("invalid zoo graph: {e}"), nodes: vec![] })
}

/// LeNet as CryptGPU (and Caffe) train it on MNIST: conv 1→20 (5x5), pool, conv 20→50
/// (5x5), pool, fc 800→500, fc 500→10; the activation after each conv and the first fc.
/// 431,080 parameters.
pub fn lenet(a: Activation, p: Pooling) -> Graph {
    let mut s = Chain::new(&format!("lenet-{}-{}", act_name(a), pool_name(p)), &Dataset::Mnist.input());
    s.extend([
        conv(1, 20, 5, 1, 0),
        act(a),
        pool(p, 2, 2, 0),
        conv(20, 50, 5, 1, 0),
        act(a),
        pool(p, 2, 2, 0),
        Op::Flatten,
        fc(800, 500),
        act(a),
        fc(500, 10),
    ]);
    done(s)
}

/// The classic LeNet-5 on 28x28 digits (padding 2 in the first conv stands for the 32x32
/// input): conv 1→6, pool, conv 6→16, pool, fc 400→120→84→10. 61,706 parameters.
pub fn lenet5(a: Activation, p: Pooling) -> Graph {
    let mut s = Chain::new(&format!("lenet5-{}-{}", act_name(a), pool_name(p)), &Dataset::Mnist.input());
    s.extend([
        conv(1, 6, 5, 1, 2),
        act(a),
        pool(p, 2, 2, 0),
        conv(6, 16, 5, 1, 0),
        act(a),
        pool(p, 2, 2, 0),
        Op::Flatten,
        fc(400, 120),
        act(a),
        fc(120, 84),
        act(a),
        fc(84, 10),
    ]);
    done(s)
}

/// AlexNet. ImageNet: the original (torchvision's channel counts: 64, 192, 384, 256,
/// 256; three 3x3 stride-2 pools; fc 9216→4096→4096→1000). CIFAR-10 and Tiny ImageNet:
/// the small-image AlexNet (conv 11x11 stride 4 padding 5, 2x2 pools) without its last
/// pool, with fc 256-256-10 (CIFAR-10) or 1024-1024-200 (Tiny ImageNet), as the paper.
/// `p` picks the pooling (the paper: average).
pub fn alexnet(d: Dataset, p: Pooling) -> Graph {
    let mut s = Chain::new(&format!("alexnet-{}-{}", d.name(), pool_name(p)), &d.input());
    if d == Dataset::ImageNet {
        s.extend([
            conv(3, 64, 11, 4, 2),
            Op::Relu,
            pool(p, 3, 2, 0),
            conv(64, 192, 5, 1, 2),
            Op::Relu,
            pool(p, 3, 2, 0),
        ]);
    } else {
        s.extend([
            conv(3, 64, 11, 4, 5),
            Op::Relu,
            pool(p, 2, 2, 0),
            conv(64, 192, 5, 1, 2),
            Op::Relu,
            pool(p, 2, 2, 0),
        ]);
    }
    s.extend([conv(192, 384, 3, 1, 1), Op::Relu, conv(384, 256, 3, 1, 1), Op::Relu, conv(256, 256, 3, 1, 1), Op::Relu]);
    if d == Dataset::ImageNet {
        s.push(pool(p, 3, 2, 0));
    }
    s.push(Op::Flatten);
    let hidden = match d {
        Dataset::ImageNet => 4096,
        Dataset::TinyImageNet => 1024,
        _ => 256,
    };
    let f = s.flat();
    s.extend([fc(f, hidden), Op::Relu, fc(hidden, hidden), Op::Relu, fc(hidden, d.classes())]);
    done(s)
}

/// VGG-16: 13 3x3 convolutions (64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M, 512 x3, M)
/// with ReLU, then 3 fc. CIFAR-10: fc 512→256→256→10; Tiny ImageNet: 2048→512→512→200;
/// ImageNet: a 2x2 average pool before the first fc (7x7 → 3x3 maps, 25088 → 4608
/// features), fc 4608→4096→4096→1000. `p` picks the pooling inside the feature stack.
pub fn vgg16(d: Dataset, p: Pooling) -> Graph {
    let cfg: [usize; 18] = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];
    let mut s = Chain::new(&format!("vgg16-{}-{}", d.name(), pool_name(p)), &d.input());
    let mut c = 3;
    for v in cfg {
        if v == 0 {
            s.push(pool(p, 2, 2, 0));
        } else {
            s.extend([conv(c, v, 3, 1, 1), Op::Relu]);
            c = v;
        }
    }
    if d == Dataset::ImageNet {
        s.push(Op::AvgPool(PoolSpec::square(2, 2, 0)));
    }
    s.push(Op::Flatten);
    let hidden = match d {
        Dataset::ImageNet => 4096,
        Dataset::TinyImageNet => 512,
        _ => 256,
    };
    let f = s.flat();
    s.extend([fc(f, hidden), Op::Relu, fc(hidden, hidden), Op::Relu, fc(hidden, d.classes())]);
    done(s)
}

/// A bottleneck block (torchvision's v1.5: the stride sits on the 3x3 conv), followed
/// by the block's ReLU (a separate layer after the residual add).
fn bottleneck(s: &mut Chain, in_c: usize, width: usize, stride: usize) {
    let out = 4 * width;
    let body = vec![
        conv_nb(in_c, width, 1, 1, 0),
        Op::BatchNorm { c: width },
        Op::Relu,
        conv_nb(width, width, 3, stride, 1),
        Op::BatchNorm { c: width },
        Op::Relu,
        conv_nb(width, out, 1, 1, 0),
        Op::BatchNorm { c: out },
    ];
    let shortcut = if stride != 1 || in_c != out {
        vec![conv_nb(in_c, out, 1, stride, 0), Op::BatchNorm { c: out }]
    } else {
        vec![]
    };
    s.residual(body, shortcut);
    s.push(Op::Relu);
}

/// ResNet-50, -101 or -152 (`depth`; other depths give blocks [3, 4, 6, 3]): stem conv
/// 7x7 stride 2, batch norm, ReLU, 3x3 stride-2 pool (`p`), four stages of bottleneck
/// blocks (`[3, 4, 6, 3]`, `[3, 4, 23, 3]`, `[3, 8, 36, 3]`; widths 64, 128, 256, 512, expansion 4),
/// a global average pool and fc 2048→classes. ResNet-50 on ImageNet: 25,557,032
/// parameters (batch norm `γ`, `β` included).
pub fn resnet(depth: usize, d: Dataset, p: Pooling) -> Graph {
    let blocks = match depth {
        101 => [3, 4, 23, 3],
        152 => [3, 8, 36, 3],
        _ => [3, 4, 6, 3],
    };
    let mut s = Chain::new(&format!("resnet{}-{}-{}", depth, d.name(), pool_name(p)), &d.input());
    s.extend([conv_nb(3, 64, 7, 2, 3), Op::BatchNorm { c: 64 }, Op::Relu, pool(p, 3, 2, 1)]);
    let mut in_c = 64;
    for (stage, &n) in blocks.iter().enumerate() {
        let width = 64 << stage;
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            bottleneck(&mut s, in_c, width, stride);
            in_c = 4 * width;
        }
    }
    let hw = s.dims().get(1).copied().unwrap_or(1);
    s.extend([Op::AvgPool(PoolSpec::square(hw, hw, 0)), Op::Flatten, fc(in_c, d.classes())]);
    done(s)
}
