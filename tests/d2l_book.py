"""The book's own networks, transcribed from d2l (PyTorch edition, chapters 6.6 and 7, and RegNetX-32 from the
English edition's 8.8), as references.

Deliberately not shared with explorer/: the tests compare our configurable builders against this code.
"""

import torch
from torch import nn
from torch.nn import functional as F


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))


def lenet_bn():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10))


def alexnet():
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10))


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch):
    conv_blks = []
    in_channels = 1
    for (num_convs, out_channels) in conv_arch:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10))


conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg11():
    return vgg(conv_arch)


def vgg11_small():
    ratio = 4
    small_conv_arch = [(pair[0], pair[1] // ratio) for pair in conv_arch]
    return vgg(small_conv_arch)


def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin():
    return nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten())


class Inception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet():
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
                       nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b3 = nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32),
                       Inception(256, 128, (128, 192), (32, 96), 64),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b4 = nn.Sequential(Inception(480, 192, (96, 208), (16, 48), 64),
                       Inception(512, 160, (112, 224), (24, 64), 64),
                       Inception(512, 128, (128, 256), (24, 64), 64),
                       Inception(512, 112, (144, 288), (32, 64), 64),
                       Inception(528, 256, (160, 320), (32, 128), 128),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b5 = nn.Sequential(Inception(832, 256, (160, 320), (32, 128), 128),
                       Inception(832, 384, (192, 384), (48, 128), 128),
                       nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))


class Residual(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def _b1():
    return nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                         nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def resnet(num_residuals=(2, 2, 2, 2)):
    b2 = nn.Sequential(*resnet_block(64, 64, num_residuals[0], first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, num_residuals[1]))
    b4 = nn.Sequential(*resnet_block(128, 256, num_residuals[2]))
    b5 = nn.Sequential(*resnet_block(256, 512, num_residuals[3]))
    return nn.Sequential(_b1(), b2, b3, b4, b5,
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


def conv_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    def __init__(self, num_convs, input_channels, num_channels):
        super(DenseBlock, self).__init__()
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


def densenet():
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return nn.Sequential(
        _b1(), *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(num_channels, 10))


class ResNeXtBlock(nn.Module):
    """The ResNeXt block (d2l-en 8.6.5), as the English edition writes it: lazy layers."""
    def __init__(self, num_channels, groups, bot_mul, use_1x1conv=False,
                 strides=1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3,
                                   stride=strides, padding=1,
                                   groups=bot_channels//groups)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.bn3 = nn.LazyBatchNorm2d()
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1,
                                       stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()
        else:
            self.conv4 = None

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4:
            X = self.bn4(self.conv4(X))
        return F.relu(Y + X)


class AnyNet(nn.Module):
    """AnyNet (d2l-en 8.8.1); the book's is a d2l.Classifier, whose network is this `net`."""
    def __init__(self, arch, stem_channels, num_classes=10):
        super().__init__()
        self.net = nn.Sequential(self.stem(stem_channels))
        for i, s in enumerate(arch):
            self.net.add_module(f'stage{i+1}', self.stage(*s))
        self.net.add_module('head', nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))

    def stem(self, num_channels):
        return nn.Sequential(
            nn.LazyConv2d(num_channels, kernel_size=3, stride=2, padding=1),
            nn.LazyBatchNorm2d(), nn.ReLU())

    def stage(self, depth, num_channels, groups, bot_mul):
        blk = []
        for i in range(depth):
            if i == 0:
                blk.append(ResNeXtBlock(num_channels, groups, bot_mul,
                    use_1x1conv=True, strides=2))
            else:
                blk.append(ResNeXtBlock(num_channels, groups, bot_mul))
        return nn.Sequential(*blk)


def regnetx32():
    """RegNetX32 (d2l-en 8.8.4), its layers given their shapes as the book's layer_summary((1, 1, 96, 96))."""
    stem_channels, groups, bot_mul = 32, 16, 1
    depths, channels = (4, 6), (32, 80)
    net = AnyNet(((depths[0], channels[0], groups, bot_mul),
                  (depths[1], channels[1], groups, bot_mul)), stem_channels).net
    net(torch.zeros(1, 1, 96, 96))
    return net


# The exercises' networks: written here from the papers' tables in the book's conventions (every convolution has
# a bias, a 1x1 shortcut has no batch norm, the book's b1 stem, one input channel, ten classes), independently of
# explorer/, as the reference the catalog's are checked against.

def vgg16():  # Simonyan and Zisserman's Table 1, configuration D
    return vgg(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)))


def vgg19():  # configuration E
    return vgg(((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)))


class BottleneckBlock(nn.Module):  # He et al. 2016, Figure 5 (right); ReLUs as the book's Residual applies them
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        mid = out_channels // 4
        self.a, self.a_bn = nn.Conv2d(in_channels, mid, 1), nn.BatchNorm2d(mid)
        self.b, self.b_bn = nn.Conv2d(mid, mid, 3, stride=stride, padding=1), nn.BatchNorm2d(mid)
        self.c, self.c_bn = nn.Conv2d(mid, out_channels, 1), nn.BatchNorm2d(out_channels)
        self.project = (nn.Conv2d(in_channels, out_channels, 1, stride=stride)
                        if in_channels != out_channels or stride != 1 else None)

    def forward(self, x):
        y = F.relu(self.a_bn(self.a(x)))
        y = F.relu(self.b_bn(self.b(y)))
        y = self.c_bn(self.c(y))
        return F.relu(y + (x if self.project is None else self.project(x)))


def bottleneck_resnet(depths):  # He et al. 2016, Table 1: ResNet-50, -101, -152
    layers, in_channels = [_b1()], 64
    for i, (depth, out_channels) in enumerate(zip(depths, (256, 512, 1024, 2048), strict=True)):
        for j in range(depth):
            layers.append(BottleneckBlock(in_channels, out_channels, 2 if i > 0 and j == 0 else 1))
            in_channels = out_channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(2048, 10))


def densenet_bc(blocks, growth=32):  # Huang et al. 2017, Table 1: DenseNet-121, -169, -201, -264
    class Layer(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.f = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 4 * growth, 1),
                                   nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1))

        def forward(self, x):
            return torch.cat((x, self.f(x)), dim=1)

    layers, c = [_b1()], 64
    for i, n in enumerate(blocks):
        for _ in range(n):
            layers.append(Layer(c))
            c += growth
        if i != len(blocks) - 1:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1), nn.AvgPool2d(2, 2)]
            c //= 2
    return nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(c, 10))


# Not the book's: the speedrun network (explorer/models/speedrun.py), written out layer by layer as the
# reference its builder is checked against.

def speedrun():
    def conv(i, o):
        return [nn.Conv2d(i, o, kernel_size=3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(
        nn.Sequential(*conv(1, 32), *conv(32, 32), nn.MaxPool2d(2, 2)),      # 28 -> 14
        nn.Sequential(*conv(32, 64), *conv(64, 64), nn.MaxPool2d(2, 2)),     # 14 -> 7
        nn.Sequential(*conv(64, 128), *conv(128, 128), nn.MaxPool2d(2, 2)),  # 7 -> 3
        nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten(), nn.Linear(128, 10))


BOOK = {
    "lenet": lenet,
    "lenet-bn-scratch": lenet_bn,  # same parameters as the scratch version: gamma/beta per channel
    "lenet-bn": lenet_bn,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg11-small": vgg11_small,
    "nin": nin,
    "googlenet": googlenet,
    "resnet18": resnet,
    "resnet34": lambda: resnet((3, 4, 6, 3)),
    "densenet": densenet,
    "regnetx32": regnetx32,
    "speedrun": speedrun,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "resnet50": lambda: bottleneck_resnet((3, 4, 6, 3)),
    "resnet101": lambda: bottleneck_resnet((3, 4, 23, 3)),
    "resnet152": lambda: bottleneck_resnet((3, 8, 36, 3)),
    "densenet121": lambda: densenet_bc((6, 12, 24, 16)),
    "densenet169": lambda: densenet_bc((6, 12, 32, 32)),
    "densenet201": lambda: densenet_bc((6, 12, 48, 32)),
    "densenet264": lambda: densenet_bc((6, 12, 64, 48)),
}


# How the book trains each: d2l.train_ch6(net, train_iter, test_iter, num_epochs, lr) after
# load_data_fashion_mnist(batch_size, resize): (lr, batch_size, num_epochs, resize or 28)
TRAINING = {
    "lenet": (0.9, 256, 10, 28),
    "lenet-bn-scratch": (1.0, 256, 10, 28),
    "lenet-bn": (1.0, 256, 10, 28),
    "alexnet": (0.01, 128, 10, 224),
    "vgg11": (0.05, 128, 10, 224),
    "vgg11-small": (0.05, 128, 10, 224),
    "nin": (0.1, 128, 10, 224),
    "googlenet": (0.1, 128, 10, 96),
    "resnet18": (0.05, 256, 10, 96),
    "resnet34": (0.05, 256, 10, 96),
    "densenet": (0.1, 256, 10, 96),
    "regnetx32": (0.05, 128, 10, 96),  # the English edition's Trainer(max_epochs=10), FashionMNIST(128, (96, 96))
    "speedrun": (0.05, 128, 10, 28),  # not the book's: its "book" settings are VGG's, at Fashion-MNIST's own 28
    # the exercises' networks, trained as the book trains their family
    "vgg16": (0.05, 128, 10, 224),
    "vgg19": (0.05, 128, 10, 224),
    "resnet50": (0.05, 256, 10, 96),
    "resnet101": (0.05, 256, 10, 96),
    "resnet152": (0.05, 256, 10, 96),
    "densenet121": (0.1, 256, 10, 96),
    "densenet169": (0.1, 256, 10, 96),
    "densenet201": (0.1, 256, 10, 96),
    "densenet264": (0.1, 256, 10, 96),
}
