#!/usr/bin/python3
"""Exports a torchvision model as a TorchScript chain of split units.

The saved module is a torch.nn.Sequential whose named top-level children are the split units
(common/torchscript_model.h loads it and splits between children). The units follow the zoo's
(common/model_zoo.h), with '_' instead of '.' since module names cannot contain dots:

  resnet18      stem, layer1_0 .. layer4_1, head (avg-pool, flatten, fc)          10 units
  mobilenet_v2  stem, block1 .. block17, conv_last, head                          20 units
  alexnet       conv1 .. conv5 (pools fused into conv1, conv2, conv5), fc6 .. fc8  8 units
  vgg16         conv1_1 .. conv5_3 (pools fused into each stage's last conv), fc6 .. fc8
  tiny          conv1, conv2, head: a few thousand parameters, for tests          3 units

Weights are random (weights=None, seeded by --seed); nothing is downloaded. The module gets an
attribute `splitinfer_input_shape` ([3, S, S]) that the C++ loader uses when the caller gives
no input shape. Before saving, the script checks that the chain computes what the original
torchvision model computes.

Run with /usr/bin/python3 (Debian's torch 1.13 and torchvision 0.14):
  /usr/bin/python3 scripts/export_torchscript.py --model resnet18 --out models/resnet18.pt
"""

import argparse
import collections
import os
import sys

try:
    import torch
    from torch import nn
except ImportError as e:
    sys.exit("export_torchscript.py: cannot import torch (%s); install python3-torch "
             "(Debian) and run with /usr/bin/python3" % e)

MODELS = ("resnet18", "mobilenet_v2", "alexnet", "vgg16", "tiny")


def _torchvision():
    try:
        import torchvision
    except ImportError as e:
        sys.exit("export_torchscript.py: cannot import torchvision (%s); install "
                 "python3-torchvision (Debian) and run with /usr/bin/python3" % e)
    return torchvision.models


def _head(pool, *layers):
    return nn.Sequential(pool, nn.Flatten(1), *layers)


def resnet18_units(num_classes):
    m = _torchvision().resnet18(weights=None, num_classes=num_classes)
    units = [("stem", nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool))]
    for i in range(1, 5):
        for j, block in enumerate(getattr(m, "layer%d" % i)):
            units.append(("layer%d_%d" % (i, j), block))
    units.append(("head", _head(m.avgpool, m.fc)))
    return m, units


def mobilenet_v2_units(num_classes):
    m = _torchvision().mobilenet_v2(weights=None, num_classes=num_classes)
    f = m.features
    units = [("stem", f[0])]
    units += [("block%d" % i, f[i]) for i in range(1, len(f) - 1)]
    units.append(("conv_last", f[len(f) - 1]))
    # torchvision's forward() uses functional adaptive_avg_pool2d((1, 1)) and flatten.
    units.append(("head", _head(nn.AdaptiveAvgPool2d((1, 1)), m.classifier)))
    return m, units


def _split_features(features, names):
    """Groups a features Sequential into units that each start at a Conv2d."""
    groups = []
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            groups.append([])
        groups[-1].append(layer)
    assert len(groups) == len(names), (len(groups), len(names))
    return [(n, nn.Sequential(*g)) for n, g in zip(names, groups)]


def _split_classifier(avgpool, classifier):
    """fc6 = pool + flatten + Linear + ReLU, fc7 = Linear + ReLU, fc8 = Linear.

    `classifier` comes without its Dropout layers, which are identities in eval mode.
    """
    groups = []
    for layer in classifier:
        if isinstance(layer, nn.Linear):
            groups.append([])
        groups[-1].append(layer)
    units = []
    for i, g in enumerate(groups):
        if i == 0:
            unit = _head(avgpool, *g)
        else:
            unit = nn.Sequential(*g) if len(g) > 1 else g[0]
        units.append(("fc%d" % (6 + i), unit))
    return units


def alexnet_units(num_classes):
    m = _torchvision().alexnet(weights=None, num_classes=num_classes)
    classifier = [l for l in m.classifier if not isinstance(l, nn.Dropout)]
    units = _split_features(m.features, ["conv%d" % i for i in range(1, 6)])
    units += _split_classifier(m.avgpool, classifier)
    return m, units


def vgg16_units(num_classes):
    m = _torchvision().vgg16(weights=None, num_classes=num_classes)
    names = ["conv%d_%d" % (s, i) for s, n in zip(range(1, 6), (2, 2, 3, 3, 3))
             for i in range(1, n + 1)]
    classifier = [l for l in m.classifier if not isinstance(l, nn.Dropout)]
    units = _split_features(m.features, names)
    units += _split_classifier(m.avgpool, classifier)
    return m, units


def tiny_units(num_classes):
    units = [
        ("conv1", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())),
        ("conv2", nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                nn.ReLU())),
        ("head", _head(nn.AdaptiveAvgPool2d(1), nn.Linear(8, num_classes))),
    ]
    return nn.Sequential(collections.OrderedDict(units)), units


BUILDERS = {
    "resnet18": resnet18_units,
    "mobilenet_v2": mobilenet_v2_units,
    "alexnet": alexnet_units,
    "vgg16": vgg16_units,
    "tiny": tiny_units,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--out", required=True, help="where to write the TorchScript file")
    p.add_argument("--input-size", type=int, default=224, help="H = W of the input image")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for the weights")
    p.add_argument("--trace", action="store_true",
                   help="torch.jit.trace instead of torch.jit.script")
    args = p.parse_args()
    if args.input_size < 1 or args.num_classes < 1:
        p.error("--input-size and --num-classes must be >= 1")

    torch.manual_seed(args.seed)
    original, units = BUILDERS[args.model](args.num_classes)
    chain = nn.Sequential(collections.OrderedDict(units)).eval()
    original.eval()

    shape = [3, args.input_size, args.input_size]
    x = torch.randn([2] + shape)
    with torch.no_grad():
        try:
            want = original(x)
        except RuntimeError as e:
            sys.exit("export_torchscript.py: %s does not accept input %s: %s"
                     % (args.model, shape, str(e).splitlines()[0]))
        got = chain(x)
    if not torch.allclose(want, got, rtol=1e-4, atol=1e-5):
        sys.exit("export_torchscript.py: the unit chain of %s differs from the model "
                 "(max abs diff %g)" % (args.model, (want - got).abs().max().item()))

    if args.trace:
        scripted = torch.jit.trace(chain, x)
        # Traced modules keep no Python attributes; register it on the TorchScript object.
        scripted._c._register_attribute("splitinfer_input_shape",
                                        torch._C.ListType(torch._C.IntType.get()), shape)
    else:
        chain.splitinfer_input_shape = shape  # a List[int] attribute, kept by scripting
        scripted = torch.jit.script(chain)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    torch.jit.save(scripted, args.out)
    print("wrote %s: %s, %d units (%s), input %s" % (args.out, args.model, len(units),
                                                     ", ".join(n for n, _ in units), shape))


if __name__ == "__main__":
    main()
