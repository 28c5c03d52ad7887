//! Model and dataset names of the command line, and the zoo networks they stand for.

use clap::ValueEnum;
use serde::Serialize;
use triad_layers::zoo::{self, Dataset};
use triad_layers::{Activation, Graph, Pooling};

/// A model of the zoo, by its command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelName {
    /// LeNet with ReLU and average pooling (the paper's).
    Lenet,
    /// LeNet with tanh and average pooling.
    LenetTanh,
    /// LeNet with ReLU and max pooling.
    LenetMaxpool,
    /// AlexNet (the small-image version on CIFAR-10 and Tiny ImageNet).
    Alexnet,
    /// VGG-16.
    Vgg16,
    /// ResNet-50.
    Resnet50,
    /// ResNet-101.
    Resnet101,
    /// ResNet-152.
    Resnet152,
}

impl ModelName {
    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::Lenet => "lenet",
            ModelName::LenetTanh => "lenet-tanh",
            ModelName::LenetMaxpool => "lenet-maxpool",
            ModelName::Alexnet => "alexnet",
            ModelName::Vgg16 => "vgg16",
            ModelName::Resnet50 => "resnet50",
            ModelName::Resnet101 => "resnet101",
            ModelName::Resnet152 => "resnet152",
        }
    }

    /// The dataset shape a model uses when none is given: MNIST for LeNet, CIFAR-10 for
    /// AlexNet and VGG-16, ImageNet for the ResNets.
    pub fn default_dataset(self) -> Shape {
        match self {
            ModelName::Lenet | ModelName::LenetTanh | ModelName::LenetMaxpool => Shape::Mnist,
            ModelName::Alexnet | ModelName::Vgg16 => Shape::Cifar10,
            _ => Shape::Imagenet,
        }
    }

    /// The datasets this model is defined for.
    pub fn datasets(self) -> &'static [Shape] {
        match self {
            ModelName::Lenet | ModelName::LenetTanh | ModelName::LenetMaxpool => &[Shape::Mnist],
            ModelName::Alexnet | ModelName::Vgg16 => &[Shape::Cifar10, Shape::TinyImagenet, Shape::Imagenet],
            _ => &[Shape::Imagenet, Shape::Cifar10, Shape::TinyImagenet],
        }
    }

    /// The network for dataset `d`, or a usage message when the model is not defined for it.
    pub fn net(self, d: Shape) -> Result<Graph, String> {
        if !self.datasets().contains(&d) {
            let ok: Vec<_> = self.datasets().iter().map(|d| d.as_str()).collect();
            return Err(format!(
                "model {} is not defined for dataset {} (it takes: {})",
                self.as_str(),
                d.as_str(),
                ok.join(", ")
            ));
        }
        let ds = d.zoo();
        Ok(match self {
            ModelName::Lenet => zoo::lenet(Activation::Relu, Pooling::Avg),
            ModelName::LenetTanh => zoo::lenet(Activation::Tanh, Pooling::Avg),
            ModelName::LenetMaxpool => zoo::lenet(Activation::Relu, Pooling::Max),
            ModelName::Alexnet => zoo::alexnet(ds, Pooling::Avg),
            ModelName::Vgg16 => zoo::vgg16(ds, Pooling::Avg),
            ModelName::Resnet50 => zoo::resnet(50, ds, Pooling::Avg),
            ModelName::Resnet101 => zoo::resnet(101, ds, Pooling::Avg),
            ModelName::Resnet152 => zoo::resnet(152, ds, Pooling::Avg),
        })
    }
}

/// A dataset shape of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// MNIST digits, 1x28x28, 10 classes (bundled: 8,000 train, 2,000 test).
    Mnist,
    /// CIFAR-10, 3x32x32, 10 classes (binary files with --data, else random).
    Cifar10,
    /// Tiny ImageNet, 3x64x64, 200 classes (random inputs).
    TinyImagenet,
    /// ImageNet, 3x224x224, 1000 classes (random inputs).
    Imagenet,
}

impl Shape {
    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        self.zoo().name()
    }
    /// The zoo's dataset.
    pub fn zoo(self) -> Dataset {
        match self {
            Shape::Mnist => Dataset::Mnist,
            Shape::Cifar10 => Dataset::Cifar10,
            Shape::TinyImagenet => Dataset::TinyImageNet,
            Shape::Imagenet => Dataset::ImageNet,
        }
    }
}
