"""The chapter's exercises, both editions, each set up in one click where a tool can answer it.

One entry per exercise, numbered as its edition numbers it: `zh-7.6-3` is exercise 3 of section 7.6 of
动手学深度学习 (the Chinese 2.0 edition), `en-8.6-3` the same exercise in Dive into Deep Learning (the English
edition), which links it back. Each entry says the exercise in a sentence (our words), what kind it is, and
its setups: catalog networks with changed knobs, opened on the page that answers it (Explore, Compare, Train,
Inside or a lesson). A measurement's answer is computed from the setups' own summaries, never typed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from explorer import registry
from explorer.config import ModelConfig, knob_text, with_overrides
from explorer.errors import ConfigError
from explorer.i18n import N_, _

Kind = Literal["experiment", "measurement", "conceptual", "out of scope"]
KINDS: tuple[Kind, ...] = ("experiment", "measurement", "conceptual", "out of scope")
Page = Literal["explore", "compare", "train", "inside", "lessons"]
EDITIONS = {"zh": "动手学深度学习", "en": "Dive into Deep Learning"}


@dataclass(frozen=True)
class Setup:
    """One network an exercise opens: a catalog entry and the knobs it changes (as `--set knob=value` takes
    them), with what it is in a few words."""

    model: str
    config: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def built(self) -> ModelConfig:
        return with_overrides(registry.get(self.model).config, self.texts())

    def texts(self) -> dict[str, str]:
        """The changed knobs as `--set knob=value` and URLs write them."""
        return {k: f"[{knob_text(v)}]" if isinstance(v, tuple) else knob_text(v) for k, v in self.config.items()}


@dataclass(frozen=True)
class Exercise:
    id: str                          # "zh-7.6-3": edition, section, number
    question: str                    # the exercise in a sentence or two, our words (a catalog key)
    kind: Kind
    setups: tuple[Setup, ...] = ()
    page: Page = "explore"           # where the setups open: each on Explore or Train, the first two on Compare
    same: str = ""                   # the same exercise in the other edition
    note: str = ""                   # what to look at (conceptual), what is missing (partly), why not (out of scope)
    partly: bool = False             # the setups answer part of it; `note` says what is missing
    answer: str = ""                 # a measurement's answer: a key of ANSWERS, computed from the setups
    extra: Mapping[str, str] = field(default_factory=dict)  # further URL parameters (a lesson, an image)

    @property
    def edition(self) -> str:
        return self.id.split("-")[0]

    @property
    def section(self) -> str:
        return self.id.split("-")[1]

    @property
    def number(self) -> int:
        return int(self.id.split("-")[2])

    @property
    def coverage(self) -> str:
        """answered, partly, not, conceptual or out of scope: the README's coverage table counts these."""
        if self.kind in ("conceptual", "out of scope"):
            return self.kind
        if not self.setups and self.page != "lessons":
            return "not"
        return "partly" if self.partly else "answered"


def S(model: str, label: str = "", **config: Any) -> Setup:  # noqa: N802 - reads as the catalog's data
    return Setup(model, config, label)


def E(id: str, question: str, kind: Kind, *setups: Setup, **more: Any) -> Exercise:  # noqa: N802, A002
    return Exercise(id, question, kind, setups, **more)


LENET_28 = {"channels": (6, 16, 32), "kernel": 3}  # a third convolution needs smaller kernels to fit 28 pixels
Q = {  # questions both editions ask alike, said once
    "max_pool": N_("Replace LeNet's average pooling by max pooling. What happens?"),
    "lenet_bigger": N_("Make a LeNet-style network more accurate: change the kernel size, the output channels, "
                       "the activation, the number of convolutions and of dense layers, the learning rate and "
                       "other training details."),
    "mnist": N_("Try the improved network on the original MNIST digits."),
    "activations": N_("Show the activations of LeNet's first and second layers for different inputs, such as a "
                      "pullover and a coat."),
    "epochs": N_("Train AlexNet for more epochs. How do its results differ from LeNet's, and why?"),
    "simpler": N_("AlexNet may be too complex for Fashion-MNIST: simplify it to train faster without losing much "
                  "accuracy, and design a better model that works on 28x28 images directly."),
    "batch": N_("Change the batch size and watch accuracy, throughput and memory."),
    "alex_compute": N_("Analyse AlexNet's computation: which part dominates its memory, which its compute, and "
                       "what memory bandwidth does computing it need?"),
    "lenet_relu": N_("Add dropout and ReLU to LeNet-5. Does it improve? Does preprocessing (augmentation) help "
                     "further?"),
    "eight": N_("Printing VGG's layer shapes shows 8 results, not 11. Where did the other 3 layers go?"),
    "vgg_slow": N_("VGG is much slower than AlexNet and needs more memory. Compare their parameters, and the "
                   "operations of their convolutions and dense layers: why is that?"),
    "vgg_res": N_("Feed Fashion-MNIST at 96 (or 56, 84) pixels instead of 224. What does it change, and can the "
                  "network stay as accurate?"),
    "vgg16": N_("Build VGG-16 and VGG-19 from Table 1 of the VGG paper."),
    "two_1x1": N_("Why does a NiN block have two 1x1 convolutions? Remove one (or add a third) and see what "
                  "changes."),
    "nin_cost": N_("Work out NiN's resources: its parameters, its computation, and the memory it needs to train "
                   "and to predict."),
    "nin_384": N_("What can go wrong when NiN's last block reduces a 384x5x5 representation to 10x5x5 in one "
                  "step?"),
    "successors": N_("Implement GoogLeNet's successors: batch normalization, changes to the Inception block, label "
                     "smoothing, and residual connections."),
    "min_size": N_("What is the smallest image GoogLeNet can take?"),
    "sizes": N_("Compare the parameters of AlexNet, VGG, NiN and GoogLeNet. How do the last two need so few?"),
    "bias": N_("Can the bias be removed from a dense or convolutional layer that a batch norm follows? Why?"),
    "bn_lr": N_("Compare LeNet's learning rates with and without batch normalization: plot the accuracy, and find "
                "how large a rate each can take."),
    "every": N_("Is batch normalization needed after every layer? Experiment with it."),
    "dropout_bn": N_("Can batch normalization replace dropout? How does training change?"),
    "gamma": N_("Fix batch norm's scale γ and shift β (at 1 and 0) and observe what changes."),
    "research": N_("Research: other normalizations, such as the probability integral transform or a full-rank "
                   "covariance estimate."),
    "inception_vs_res": N_("How do the Inception block and the residual block differ, and how do they relate once "
                           "some of the Inception block's paths are removed?"),
    "table1": N_("Implement the variants in Table 1 of the ResNet paper."),
    "bottleneck": N_("Implement the bottleneck block ResNet uses for deeper networks."),
    "preact": N_("Change the residual block from convolution, batch norm, activation to batch norm, activation, "
                 "convolution (the pre-activation ResNet)."),
    "nested": N_("Why limit how complex the functions get, even when the function classes are nested?"),
    "avg_pool": N_("Why do DenseNet's transition layers use average pooling rather than max pooling?"),
    "dense_params": N_("DenseNet has fewer parameters than ResNet. Why?"),
    "dense_memory": N_("DenseNet is criticised for its memory use. Is it true at 224x224, and how could it be "
                       "reduced?"),
    "dense_table1": N_("Implement the DenseNet versions in Table 1 of the DenseNet paper."),
    "dense_mlp": N_("Design an MLP from DenseNet's idea and apply it to the house-price data."),
}
HOUSE = N_("a tabular regression task (Kaggle's house prices), not an image network: out of this tool's scope")
RESEARCH = N_("a research question: no single setup answers it")
MNIST = N_("the setup trains on MNIST (the Train page's Data set, or train --dataset mnist): compare its test "
           "accuracy with the same network's on Fashion-MNIST; digits are the easier task")
LABEL_SMOOTHING = N_("label smoothing is one of Train's recipe switches (--label-smoothing in the CLI)")

@dataclass(frozen=True)
class Mirror:
    """The same exercise in the other edition, asked alike: entry `original`'s question and setups, under this
    edition's `id`."""

    original: str
    id: str


_ENTRIES: tuple[Exercise | Mirror, ...] = (
    # 动手学深度学习 6.6 LeNet
    E("zh-6.6-1", Q["max_pool"], "experiment", S("lenet", N_("average pooling (the book)")),
      S("lenet", N_("max pooling"), pool="max"), page="train", same="en-7.6-1"),
    E("zh-6.6-2", Q["lenet_bigger"], "experiment", S("lenet", N_("3x3 kernels"), kernel=3),
      S("lenet", N_("more channels"), channels=(16, 32)), S("lenet", N_("ReLU"), activation="relu"),
      S("lenet", N_("a third convolution"), **LENET_28), S("lenet", N_("a third dense layer"), fc=(120, 84, 42)),
      page="train", same="en-7.6-2"),
    E("zh-6.6-3", Q["mnist"], "experiment", S("lenet", N_("max pooling and ReLU"), pool="max", activation="relu"),
      page="train", same="en-7.6-3", note=MNIST, extra={"dataset": "mnist"}),
    E("zh-6.6-4", Q["activations"], "experiment", S("lenet", N_("a pullover (test image 1)")), page="inside",
      same="en-7.6-4", extra={"image": "1"}),
    # 7.1 AlexNet
    E("zh-7.1-1", Q["epochs"], "experiment", S("alexnet", "AlexNet"), S("lenet", "LeNet"), page="train",
      same="en-8.1-4"),
    E("zh-7.1-2", Q["simpler"], "experiment",
      S("alexnet", N_("narrower, at 67 pixels (the quick preset's)"), resolution=67, channels=(24, 64, 96, 96, 64),
        fc_width=512),
      S("alexnet", N_("at 28x28: a 3x3 first layer of stride 1"), resolution=28, first_kernel=3, first_stride=1),
      page="compare", same="en-8.1-5"),
    E("zh-7.1-3", Q["batch"], "measurement", S("alexnet", "AlexNet"), page="train", same="en-8.1-6",
      answer="batch_memory"),
    E("zh-7.1-4", Q["alex_compute"], "measurement", S("alexnet", "AlexNet"), same="en-8.1-1", answer="dominant"),
    E("zh-7.1-5", Q["lenet_relu"], "experiment", S("lenet", N_("the book's LeNet")),
      S("lenet", N_("ReLU and dropout"), activation="relu", dropout=0.5), page="train", same="en-8.1-7",
      note=N_("preprocessing: the fast preset adds augmentation (random flips and shifts)")),
    # 7.2 VGG
    E("zh-7.2-1", Q["eight"], "conceptual", S("vgg11", "VGG-11"), same="en-8.2-2",
      note=N_("the layer table shows the five VGG blocks and the dense head; open a block to see its layers")),
    E("zh-7.2-2", Q["vgg_slow"], "measurement", S("alexnet", "AlexNet"), S("vgg11", "VGG-11"), page="compare",
      same="en-8.2-1", answer="pair_costs"),
    E("zh-7.2-3", Q["vgg_res"], "experiment", S("vgg11-small", N_("224 pixels (the book)")),
      S("vgg11-small", N_("96 pixels"), resolution=96), page="compare", same="en-8.2-4", answer="pair_costs"),
    E("zh-7.2-4", Q["vgg16"], "measurement", S("vgg16", "VGG-16"), S("vgg19", "VGG-19"), page="compare",
      same="en-8.2-3", answer="pair_costs"),
    # 7.3 NiN
    E("zh-7.3-1", N_("Tune NiN's hyperparameters to make it more accurate."), "experiment",
      S("nin", N_("NiN at 67 pixels, narrower (the quick preset's)"), resolution=67, channels=(24, 64, 96)),
      page="train", note=N_("the fast preset is one tuned answer: Kaiming init, a warm-up and a cosine schedule")),
    E("zh-7.3-2", Q["two_1x1"], "experiment", S("nin", N_("two 1x1 convolutions (the book)")),
      S("nin", N_("one 1x1 convolution"), num_1x1=1), page="compare", same="en-8.3-1", answer="pair_costs"),
    E("zh-7.3-3", Q["nin_cost"], "measurement", S("nin", "NiN"), same="en-8.3-4", answer="resources"),
    E("zh-7.3-4", Q["nin_384"], "conceptual", S("nin", "NiN"), page="inside", same="en-8.3-5",
      note=N_("Inside's ReLU statistics: a last block squeezed to 10 channels at once can die (all zeros)")),
    # 7.4 GoogLeNet
    E("zh-7.4-1", Q["successors"], "experiment", S("googlenet", N_("the book's GoogLeNet")),
      S("googlenet", N_("with batch norm"), norm="builtin"),
      S("googlenet", N_("path 3 factorised into two 3x3"), factorize=True),
      S("googlenet", N_("with residual connections"), residual=True),
      page="train", same="en-8.4-1", note=LABEL_SMOOTHING),
    E("zh-7.4-2", Q["min_size"], "measurement", S("googlenet", "GoogLeNet"), same="en-8.4-2", answer="min_size"),
    E("zh-7.4-3", Q["sizes"], "measurement", S("alexnet", "AlexNet"), S("vgg11", "VGG-11"), S("nin", "NiN"),
      S("googlenet", "GoogLeNet"), same="en-8.4-4", answer="params"),
    # 7.5 batch normalization
    E("zh-7.5-1", Q["bias"], "measurement", S("lenet-bn", N_("with biases (the book)")),
      S("lenet-bn", N_("no bias before a batch norm"), bias=False), page="compare", same="en-8.5-1",
      answer="pair_costs"),
    E("zh-7.5-2", Q["bn_lr"], "experiment", S("lenet", N_("without batch norm")),
      S("lenet-bn", N_("with batch norm")), page="lessons", same="en-8.5-2", extra={"lesson": "batchnorm"},
      note=N_("the lesson trains both; raise the learning rate in Train until one fails")),
    E("zh-7.5-3", Q["every"], "experiment", S("lenet-bn", N_("after every layer (the book)")),
      S("lenet-bn", N_("after the convolutions only"), norm_at="convolutions"),
      S("lenet-bn", N_("after the dense layers only"), norm_at="dense"), page="train", same="en-8.5-3"),
    E("zh-7.5-4", Q["dropout_bn"], "experiment", S("alexnet", N_("dropout (the book)")),
      S("alexnet", N_("batch norm, no dropout"), norm="builtin", dropout=0.0), page="train", same="en-8.5-6"),
    E("zh-7.5-5", Q["gamma"], "experiment", S("lenet-bn", N_("learned γ and β")),
      S("lenet-bn", N_("γ and β fixed at 1 and 0"), affine=False), page="train", same="en-8.5-5"),
    E("zh-7.5-6", N_("Read the framework's BatchNorm documentation for other uses of batch normalization."),
      "out of scope", note=N_("reading the documentation: nothing to set up")),
    E("zh-7.5-7", Q["research"], "out of scope", same="en-8.5-7", note=RESEARCH),
    # 7.6 ResNet
    E("zh-7.6-1", Q["inception_vs_res"], "conceptual", S("googlenet", "GoogLeNet"), S("resnet18", "ResNet-18"),
      page="compare", same="en-8.6-1",
      note=N_("compare the blocks' compute per stage; the ResNet lesson measures what the shortcut does")),
    E("zh-7.6-2", Q["table1"], "measurement", S("resnet18", "ResNet-18"), S("resnet34", "ResNet-34"),
      S("resnet50", "ResNet-50"), S("resnet101", "ResNet-101"), S("resnet152", "ResNet-152"), same="en-8.6-2",
      answer="params"),
    E("zh-7.6-3", Q["bottleneck"], "measurement", S("resnet34", N_("basic blocks (ResNet-34)")),
      S("resnet50", N_("bottleneck blocks (ResNet-50)")), page="compare", same="en-8.6-3", answer="pair_costs"),
    E("zh-7.6-4", Q["preact"], "experiment", S("resnet18", N_("convolution, batch norm, ReLU (the book)")),
      S("resnet18", N_("batch norm, ReLU, convolution"), preact=True), page="train", same="en-8.6-4"),
    E("zh-7.6-5", Q["nested"], "conceptual", S("resnet18", "ResNet-18"), S("resnet152", "ResNet-152"),
      page="compare", same="en-8.6-5", note=N_("more capacity costs compute and data, and can overfit")),
    # 7.7 DenseNet
    E("zh-7.7-1", Q["avg_pool"], "experiment", S("densenet", N_("average pooling (the book)")),
      S("densenet", N_("max pooling"), pool="max"), page="train", same="en-8.7-1"),
    E("zh-7.7-2", Q["dense_params"], "measurement", S("densenet", "DenseNet"), S("resnet18", "ResNet-18"),
      page="compare", same="en-8.7-2", answer="pair_costs"),
    E("zh-7.7-3", Q["dense_memory"], "measurement", S("densenet", N_("DenseNet at 224"), resolution=224),
      S("resnet18", N_("ResNet-18 at 224"), resolution=224),
      S("densenet", N_("DenseNet at 224, recomputing in the backward pass"), resolution=224, memory_efficient=True),
      page="compare", same="en-8.7-3", answer="pair_costs",
      note=N_("the memory is what training keeps for one image by the summary; the third setup recomputes each "
              "layer's concatenation, batch norm and ReLU in the backward pass (memory_efficient, as torchvision "
              "does), which keeps far less, but a CPU's measured peak falls much less (docs/performance.md)")),
    E("zh-7.7-4", Q["dense_table1"], "measurement", S("densenet121", "DenseNet-121"),
      S("densenet169", "DenseNet-169"), S("densenet201", "DenseNet-201"), S("densenet264", "DenseNet-264"),
      same="en-8.7-4", answer="params"),
    E("zh-7.7-5", Q["dense_mlp"], "out of scope", same="en-8.7-5", note=HOUSE),

    # Dive into Deep Learning 7.6 LeNet
    E("en-7.6-1", N_("Modernise LeNet: replace average pooling by max pooling, and the sigmoids by ReLU."),
      "experiment", S("lenet", N_("the book's LeNet")), S("lenet", N_("max pooling"), pool="max"),
      S("lenet", N_("max pooling and ReLU"), pool="max", activation="relu"), page="train", same="zh-6.6-1"),
    E("en-7.6-2", Q["lenet_bigger"], "experiment", S("lenet", N_("3x3 kernels"), kernel=3),
      S("lenet", N_("more channels"), channels=(16, 32)), S("lenet", N_("a third convolution"), **LENET_28),
      S("lenet", N_("a third dense layer"), fc=(120, 84, 42)), page="train", same="zh-6.6-2"),
    Mirror("zh-6.6-3", "en-7.6-3"),
    Mirror("zh-6.6-4", "en-7.6-4"),
    E("en-7.6-5", N_("What happens to the activations when very different images go in: cats, cars, random "
                     "noise?"), "experiment", S("lenet", "LeNet"), page="inside",
      note=N_("upload any picture on Inside; it is made to look like Fashion-MNIST first")),
    # 8.1 AlexNet
    Mirror("zh-7.1-4", "en-8.1-1"),
    E("en-8.1-2", N_("As a chip designer, how would you trade computation against memory bandwidth?"),
      "conceptual", S("alexnet", "AlexNet"), note=N_("the layer table's compute and memory per layer are the "
                                                      "two sides of that trade")),
    E("en-8.1-3", N_("Why do engineers no longer report benchmarks on AlexNet?"), "conceptual",
      S("alexnet", "AlexNet"), S("resnet18", "ResNet-18"), page="compare",
      note=N_("compare its cost and accuracy with a later network of less compute")),
    Mirror("zh-7.1-1", "en-8.1-4"),
    Mirror("zh-7.1-2", "en-8.1-5"),
    Mirror("zh-7.1-3", "en-8.1-6"),
    Mirror("zh-7.1-5", "en-8.1-7"),
    E("en-8.1-8", N_("Can you make AlexNet overfit? Which feature must you remove or change to break training?"),
      "experiment", S("alexnet", N_("no dropout"), dropout=0.0, resolution=67, channels=(24, 64, 96, 96, 64),
                      fc_width=512), page="train",
      note=N_("train on a small subset (the Train page's images setting) without dropout")),
    # 8.2 VGG
    Mirror("zh-7.2-2", "en-8.2-1"),
    Mirror("zh-7.2-1", "en-8.2-2"),
    Mirror("zh-7.2-4", "en-8.2-3"),
    E("en-8.2-4", Q["vgg_res"], "experiment", S("vgg11-small", N_("56 pixels"), resolution=56),
      S("vgg11-small", N_("84 pixels"), resolution=84), page="compare", same="zh-7.2-3", answer="pair_costs"),
    # 8.3 NiN
    E("en-8.3-1", Q["two_1x1"], "experiment", S("nin", N_("one 1x1 convolution"), num_1x1=1),
      S("nin", N_("three 1x1 convolutions"), num_1x1=3), page="compare", same="zh-7.3-2", answer="pair_costs"),
    E("en-8.3-2", N_("What changes when NiN's 1x1 convolutions become 3x3 convolutions?"), "measurement",
      S("nin", N_("1x1 (the book)")), S("nin", "3x3", kernel_1x1=3), page="compare", answer="pair_costs"),
    E("en-8.3-3", N_("What if NiN's global average pooling is replaced by a dense layer (speed, accuracy, "
                     "parameters)?"), "measurement", S("nin", N_("global average pooling (the book)")),
      S("nin", N_("a dense layer"), head="dense"), page="compare", answer="pair_costs"),
    Mirror("zh-7.3-3", "en-8.3-4"),
    Mirror("zh-7.3-4", "en-8.3-5"),
    E("en-8.3-6", N_("Design a family of NiN-like networks from VGG's design decisions (as VGG-11, -16, -19 "
                     "are)."), "experiment",
      S("nin", N_("NiN-VGG with 3 blocks"), design="vgg", channels=(64, 128, 256)),
      S("nin", N_("NiN-VGG with 5 blocks"), design="vgg", channels=(64, 128, 256, 512, 512)),
      S("nin", N_("NiN-VGG with 5 blocks of three 1x1 convolutions"), design="vgg", channels=(64, 128, 256, 512, 512),
        num_1x1=3),
      page="compare", answer="pair_costs",
      note=N_("VGG's decisions: 3x3 convolutions and pools that halve the map (design=vgg), a family named by its "
              "list of widths (channels) and the depth of each block (num_1x1); train the members to compare")),
    # 8.4 GoogLeNet
    Mirror("zh-7.4-1", "en-8.4-1"),
    Mirror("zh-7.4-2", "en-8.4-2"),
    E("en-8.4-3", N_("Design a GoogLeNet that works at Fashion-MNIST's own 28x28: what must change in its stem, "
                     "body and head?"), "experiment",
      S("googlenet", N_("a 3x3 stem of stride 1, at 28x28"), stem="small", resolution=28), page="train"),
    Mirror("zh-7.4-3", "en-8.4-4"),
    E("en-8.4-5", N_("Compare the computation of GoogLeNet and AlexNet. What does it mean for an accelerator's "
                     "memory, bandwidth, cache and arithmetic?"), "measurement", S("alexnet", "AlexNet"),
      S("googlenet", "GoogLeNet"), page="compare", answer="pair_costs"),
    # 8.5 batch normalization
    Mirror("zh-7.5-1", "en-8.5-1"),
    Mirror("zh-7.5-2", "en-8.5-2"),
    Mirror("zh-7.5-3", "en-8.5-3"),
    E("en-8.5-4", N_("Implement a lite batch norm that removes only the mean, or only the variance. How does it "
                     "behave?"), "experiment", S("lenet-bn-scratch", N_("the mean only"), norm_stats="mean"),
      S("lenet-bn-scratch", N_("the variance only"), norm_stats="variance"), page="train"),
    Mirror("zh-7.5-5", "en-8.5-5"),
    Mirror("zh-7.5-4", "en-8.5-6"),
    Mirror("zh-7.5-7", "en-8.5-7"),
    # 8.6 ResNet
    Mirror("zh-7.6-1", "en-8.6-1"),
    Mirror("zh-7.6-2", "en-8.6-2"),
    Mirror("zh-7.6-3", "en-8.6-3"),
    Mirror("zh-7.6-4", "en-8.6-4"),
    Mirror("zh-7.6-5", "en-8.6-5"),
    # 8.7 DenseNet
    Mirror("zh-7.7-1", "en-8.7-1"),
    Mirror("zh-7.7-2", "en-8.7-2"),
    Mirror("zh-7.7-3", "en-8.7-3"),
    Mirror("zh-7.7-4", "en-8.7-4"),
    Mirror("zh-7.7-5", "en-8.7-5"),
    # 8.8 designing convolution network architectures (RegNet)
    E("en-8.8-1", N_("Use four stages. Can you design a deeper RegNetX that performs better?"), "experiment",
      S("regnetx32", N_("two stages (the book)")),
      S("regnetx32", N_("four stages"), depths=(2, 4, 6, 2), channels=(32, 64, 128, 256)), page="train"),
    E("en-8.8-2", N_("De-ResNeXt-ify RegNet: replace the ResNeXt block by the ResNet block. How does it do?"),
      "experiment", S("regnetx32", N_("grouped 3x3 convolutions"), channels=(64, 64)),
      S("regnetx32", N_("one group: a ResNet bottleneck"), channels=(64, 64), groups=64), page="train"),
    E("en-8.8-3", N_("Build \"VioNet\"s that break RegNetX's design principles. How do they do, and which of "
                     "depth, width, groups and bottleneck matters most?"), "experiment",
      S("regnetx32", N_("depth falls across stages"), depths=(6, 4)),
      S("regnetx32", N_("width falls across stages"), channels=(80, 32)),
      S("regnetx32", N_("a bottleneck of 1/4"), bot_mul=0.25, groups=8),
      S("regnetx32", N_("each stage its own group width and bottleneck"), channels=(64, 80), groups=(8, 16),
        bot_mul=(0.5, 1.0)), page="train"),
    E("en-8.8-4", N_("Design the \"perfect\" MLP with these design principles. Do small networks' lessons carry "
                     "over to large ones?"), "out of scope",
      note=N_("multilayer perceptrons are not image networks of this chapter: out of this tool's scope")),
)

_WRITTEN = {e.id: e for e in _ENTRIES if isinstance(e, Exercise)}
EXERCISES: tuple[Exercise, ...] = tuple(
    e if isinstance(e, Exercise) else replace(_WRITTEN[e.original], id=e.id, same=e.original) for e in _ENTRIES)
BY_ID = {exercise.id: exercise for exercise in EXERCISES}


class UnknownExercise(ConfigError):
    def __init__(self, exercise_id: str) -> None:
        super().__init__("exercise", "no exercise {id!r}; they are numbered like zh-7.6-3 or en-8.6-3",
                         id=exercise_id[:40])


def get(exercise_id: str) -> Exercise:
    if exercise_id not in BY_ID:
        raise UnknownExercise(exercise_id)
    return BY_ID[exercise_id]


def of_edition(edition: str | None = None) -> list[Exercise]:
    return [e for e in EXERCISES if edition in (None, e.edition)]


def sections(edition: str) -> list[str]:
    return list(dict.fromkeys(e.section for e in of_edition(edition)))


def answer(exercise: Exercise) -> list[tuple[str, str]]:
    """A measurement's answer, computed from its setups' summaries: (what, value) rows, in the reader's
    language; empty for an exercise whose answer is a training run."""
    from explorer.summary import summarize
    from explorer.views.tables import human

    if not exercise.answer:
        return []
    configs = [(_(s.label) if s.label else s.model, s.built()) for s in exercise.setups]
    if exercise.answer == "params":
        return [(label, human(summarize(config).totals.params)) for label, config in configs]
    if exercise.answer == "min_size":
        from explorer.summary import smallest_resolution

        side = smallest_resolution(configs[0][1])
        return [(_("smallest input that runs (this app takes 8 pixels and up)"), f"{side}x{side}")]
    if exercise.answer == "batch_memory":
        config = configs[0][1]
        return [(_("training memory at batch {batch}").format(batch=batch),
                 human(summarize(config, batch_size=batch).totals.training_bytes, "B")) for batch in (32, 128, 512)]
    if exercise.answer == "dominant":
        layers = summarize(configs[0][1]).layers
        leaves = layers[layers.is_leaf]
        dense, conv = leaves[leaves.type == "Linear"], leaves[leaves.type == "Conv2d"]
        return [(_("parameters in the dense layers"), f"{dense.params.sum() / leaves.params.sum():.0%}"),
                (_("multiply-adds in the convolutions"), f"{conv.mult_adds.sum() / leaves.mult_adds.sum():.0%}")]
    if exercise.answer == "resources":
        from explorer.measured import kept_inference

        totals = summarize(configs[0][1], batch_size=128).totals
        rows = [(_("parameters"), human(totals.params)), (_("multiply-adds per image"), human(totals.mult_adds)),
                (_("memory to train, batch 128"), human(totals.training_bytes, "B")),
                (_("memory to predict, batch 128"), human(totals.inference_bytes, "B"))]
        setup = exercise.setups[0]
        if not setup.config and (kept := kept_inference(setup.model)) is not None:  # the catalog's, as measured
            date, machine, bench = kept
            said = _("time to predict one image, measured {date} on {machine}").format(date=date, machine=machine)
            rows.append((said, f"{bench.latency_ms:.1f} ms"))
        return rows
    # pair_costs: each setup's parameters, compute and training memory at batch 1
    rows = []
    for label, config in configs:
        totals = summarize(config).totals
        rows.append((label, _("{params} parameters, {macs} multiply-adds, {memory} to train one image").format(
            params=human(totals.params), macs=human(totals.mult_adds), memory=human(totals.training_bytes, "B"))))
    return rows


def as_json(exercise: Exercise) -> dict[str, Any]:
    """An exercise as `exercises --format json` prints it: every setup a `summary MODEL --set ...` accepts."""
    return {"id": exercise.id, "edition": exercise.edition, "section": exercise.section, "number": exercise.number,
            "kind": exercise.kind, "coverage": exercise.coverage, "question": exercise.question,
            "question_zh": _zh(exercise.question), "same": exercise.same or None, "page": exercise.page,
            "note": exercise.note or None,
            "setups": [{"model": s.model, "config": {k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in s.config.items()}, "label": s.label}
                       for s in exercise.setups]}


def _zh(text: str) -> str:
    from explorer import i18n

    return i18n.catalog("zh").get(text, text)


COVERAGE = ("answered", "partly", "not", "conceptual", "out of scope")


def coverage_table(edition: str) -> list[tuple[str, dict[str, int]]]:
    """Per section of one edition: how many of its exercises each coverage holds."""
    return [(section, {c: sum(1 for e in of_edition(edition) if e.section == section and e.coverage == c)
                       for c in COVERAGE}) for section in sections(edition)]


def coverage_markdown() -> str:
    """Per edition, a table of how many of each section's exercises are answered, partly answered, not set
    up, conceptual or out of scope (the README's and docs/exercises.md's)."""
    lines = []
    for edition, title in EDITIONS.items():
        lines += [f"**{title}** ({edition})", "", "| section | " + " | ".join(COVERAGE) + " |",
                  "|---|" + "---:|" * len(COVERAGE)]
        totals = dict.fromkeys(COVERAGE, 0)
        for section, counts in coverage_table(edition):
            lines.append(f"| {section} | " + " | ".join(str(counts[c]) for c in COVERAGE) + " |")
            for c in COVERAGE:
                totals[c] += counts[c]
        lines += ["| all | " + " | ".join(str(totals[c]) for c in COVERAGE) + " |", ""]
    return "\n".join(lines)


def markdown(measured: Callable[[Exercise], list[str]] = lambda e: []) -> str:
    """docs/exercises.md: the coverage per section and edition, then every exercise, its setups and the lines
    `measured` gives it (explorer.exercise_runs' kept results). Generated by `python -m explorer exercises
    --format markdown`; a test keeps the file equal to it."""
    lines = ["# The chapter's exercises", "",
             "Generated by `python -m explorer exercises --format markdown` from `explorer/exercises.py`; the "
             "Exercises page (`/exercises?exercise=zh-7.6-3`) opens each one's setups. An exercise a training "
             "run answers lists what its setups did, each trained once with the quick preset on the real data "
             "by `python -m explorer exercises --measure` (kept in `explorer/exercises_measured.json`).", ""]
    lines += [coverage_markdown()]
    for edition, title in EDITIONS.items():
        lines += [f"## {title}: every exercise", ""]
        for e in of_edition(edition):
            same = f" (= {e.same})" if e.same else ""
            lines.append(f"- **{e.id}**{same} · {e.coverage}: {e.question}")
            for setup in e.setups:
                knobs = " ".join(f"--set {k}={v}" for k, v in setup.texts().items())
                lines.append(f"  - {setup.label or setup.model}: `{setup.model}` {knobs}".rstrip())
            if e.note:
                lines.append(f"  - {e.note}")
            lines += measured(e)
        lines.append("")
    return "\n".join(lines)
