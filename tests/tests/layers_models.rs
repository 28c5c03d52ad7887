//! The model zoo: every model's summary (layer, output shape, parameters) pinned by a
//! snapshot, and the parameter counts against the published ones.
#![allow(clippy::unwrap_used)]

use triad_layers::zoo::{alexnet, lenet, lenet5, resnet, vgg16};
use triad_layers::{Activation, Dataset, Graph, Pooling};

fn all_models() -> Vec<Graph> {
    let mut v = vec![
        lenet(Activation::Relu, Pooling::Avg),
        lenet(Activation::Tanh, Pooling::Max),
        lenet5(Activation::Relu, Pooling::Avg),
        lenet5(Activation::Tanh, Pooling::Max),
    ];
    for d in [Dataset::Cifar10, Dataset::TinyImageNet, Dataset::ImageNet] {
        v.push(alexnet(d, Pooling::Avg));
        v.push(vgg16(d, Pooling::Avg));
    }
    for depth in [50, 101, 152] {
        v.push(resnet(depth, Dataset::ImageNet, Pooling::Avg));
    }
    v.push(resnet(50, Dataset::Cifar10, Pooling::Avg));
    v
}

#[test]
fn parameter_counts_match_the_published_models() {
    let count = |n: Graph| n.num_params();
    assert_eq!(count(lenet(Activation::Relu, Pooling::Avg)), 431_080); // Caffe / CryptGPU LeNet
    assert_eq!(count(lenet5(Activation::Tanh, Pooling::Avg)), 61_706); // LeNet-5
    assert_eq!(count(alexnet(Dataset::ImageNet, Pooling::Max)), 61_100_840); // torchvision
    assert_eq!(count(resnet(50, Dataset::ImageNet, Pooling::Max)), 25_557_032); // torchvision
    assert_eq!(count(resnet(101, Dataset::ImageNet, Pooling::Max)), 44_549_160);
    assert_eq!(count(resnet(152, Dataset::ImageNet, Pooling::Max)), 60_192_808);
    // VGG-16 convolutions (14,714,688) + fc 512-256-256-10.
    assert_eq!(count(vgg16(Dataset::Cifar10, Pooling::Avg)), 14_714_688 + 131_328 + 65_792 + 2_570);
}

#[test]
fn every_model_has_its_dataset_output() {
    for n in all_models() {
        let out = n.out_dims().unwrap();
        let classes = if n.name.contains("imagenet") && !n.name.contains("tiny") {
            1000
        } else if n.name.contains("tiny") {
            200
        } else {
            10
        };
        assert_eq!(out, vec![classes], "{}", n.name);
    }
}

#[test]
fn summaries() {
    for n in all_models() {
        let collapse = n.name.starts_with("resnet");
        insta::assert_snapshot!(format!("summary_{}", n.name), n.summary(collapse).unwrap());
    }
    // One ResNet block in full.
    insta::assert_snapshot!(
        "summary_resnet50-imagenet-full-head",
        resnet(50, Dataset::ImageNet, Pooling::Avg)
            .summary(false)
            .unwrap()
            .lines()
            .take(24)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
