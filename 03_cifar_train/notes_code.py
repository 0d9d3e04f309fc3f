"""The notes' 模型训练 and 完整项目代码 / gpu版本 (CIFAR-10 with Tom and Tudui) as written, made runnable with the
smallest fixes.

    python 03_cifar_train/notes_code.py --data synthetic --epochs 1          # offline, built-in shapes
    python 03_cifar_train/notes_code.py --data cifar10 --download --device cuda
    tensorboard --logdir runs/03_cifar_train/notes_code/logs_train

Two sections, in the notes' order: 模型训练 (the Tom net, batch 1, prints each epoch's summed loss) and 完整项目代码 /
gpu版本 (Tudui, batch 64, a test pass per epoch, TensorBoard). gpu版本 is 完整项目代码 plus `.cuda()` calls; both are
the one loop below, with `.cuda()` written as `.to(device)` (`--device cpu` is 完整项目代码 exactly). The notes' names,
values and prints are kept; every change is marked `# notes: <the original line>` with the reason. train.py is the
repo's version of this loop (common/engine.py); tests/test_notes_code.py checks that both end with the same weights
after the same steps on the same batches.

Imports only torch, torchvision and tensorboard, plus `common/synthetic.py` (SyntheticShapes, which has CIFAR10's
`.data`/`.targets`/`.classes`) for `--data synthetic` (default): `--synthetic-size` training images, a quarter as many
test images. `--data cifar10` is the notes' torchvision CIFAR10, downloaded into `--data-path` only with `--download`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import MaxPool2d,Conv2d,Flatten,Linear
from torch.utils.data import DataLoader, Dataset
from torch.utils.tensorboard import SummaryWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.synthetic import SyntheticShapes  # noqa: E402


class Tom(nn.Module):
    def __init__(self):
        super(Tom, self).__init__()
        self.conv1 = Conv2d(3,32,5,padding=2)
        self.maxpool1=MaxPool2d(2)
        self.conv2 = Conv2d(32,32,5,padding=2)
        self.maxpool2 = MaxPool2d(2)
        self.conv3 = Conv2d(32, 64, 5, padding=2)
        self.maxpool3 = MaxPool2d(2)
        self.flatten = Flatten()
        self.Linear1= Linear(1024,64)
        self.Linear2= Linear(64,10)

    def forward(self,x):
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.maxpool2(x)
        x = self.conv3(x)
        x = self.maxpool3(x)
        x = self.flatten(x)
        x = self.Linear1(x)
        x = self.Linear2(x)
        return x


# notes (完整项目代码): from model import *   (the gpu版本 defines Tudui in the script; so does this file)
class Tudui(nn.Module):
    def __init__(self):
        super(Tudui, self).__init__()
        self.conv1 = nn.Conv2d(3,32,5,1,2)
        self.maxpool1=nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32,32,5,1,2)
        self.maxpool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 5, 1,2)
        self.maxpool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.Linear1= nn.Linear(1024,64)
        self.Linear2= nn.Linear(64,10)

    def forward(self,x):
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.maxpool2(x)
        x = self.conv3(x)
        x = self.maxpool3(x)
        x = self.flatten(x)
        x = self.Linear1(x)
        x = self.Linear2(x)
        return x


def cifar10(args: argparse.Namespace, train: bool, transform: torchvision.transforms.Compose) -> Dataset:
    """The notes' `torchvision.datasets.CIFAR10(root=..., train=..., transform=..., download=True)`, offline by default:
    the notes download on every run, which fails on a machine without internet."""
    if args.data == "cifar10":
        return torchvision.datasets.CIFAR10(root=str(args.data_path), train=train, transform=transform,
                                            download=args.download)
    size = args.synthetic_size if train else max(args.synthetic_size // 4, 1)
    return SyntheticShapes(size, seed=args.seed, split="train" if train else "test", transform=transform)


def model_training(args: argparse.Namespace) -> Tom:
    """The notes' 模型训练: Tom, one image per step, the summed loss printed after each epoch."""
    dataset_transform = torchvision.transforms.Compose([torchvision.transforms.ToTensor()])
    # notes: dataset= torchvision.datasets.CIFAR10(root="./dataset",train=False,transform=dataset_transform,download=True)
    # train=False is the test split: a net trained on it has no unseen images left to be tested on (完整项目代码 trains
    # on train=True); root is --data-path, shared with the next section, so CIFAR-10 is downloaded once
    dataset= cifar10(args, train=True, transform=dataset_transform)

    dataloader=DataLoader(dataset=dataset,batch_size=1)

    loss = nn.CrossEntropyLoss()
    tom=Tom()
    optim=torch.optim.SGD(tom.parameters(),lr=0.01)
    # notes: for epoch in range(20):
    for epoch in range(args.epochs or 20):
        running_loss=0.0
        for data in dataloader:
            imgs,targets = data
            output=tom(imgs)
            loss_value=loss(output,targets)
            optim.zero_grad()
            loss_value.backward()
            optim.step()
            running_loss+=loss_value.item()
        print(running_loss)
    return tom


def full_project(args: argparse.Namespace) -> Tudui:
    """The notes' 完整项目代码 / gpu版本: Tudui, batch 64, SGD lr 1e-2, a test pass and TensorBoard scalars per epoch."""
    # added: gpu版本's .cuda() is .to(device); --device cpu is the 完整项目代码
    device = torch.device(args.device)
    #准备数据集
    # notes: train_data  = torchvision.datasets.CIFAR10(root="../data",train=True,transform=torchvision.transforms.ToTensor(),
    #                                            download=True)
    train_data  = cifar10(args, train=True, transform=torchvision.transforms.ToTensor())
    # notes: test_data  = torchvision.datasets.CIFAR10(root="../data",train=False,transform=torchvision.transforms.ToTensor(),
    #                                            download=True)
    test_data  = cifar10(args, train=False, transform=torchvision.transforms.ToTensor())
    #length长度
    train_data_size = len(train_data)
    test_data_size = len(test_data)
    print("训练集的测试长度为：{}".format(train_data_size))
    print("测试集的测试长度为：{}".format(test_data_size))

    #利用dataloader来加载数据
    # notes: train_loader = DataLoader(dataset=train_data,batch_size=64,shuffle=True)
    # a seeded generator: the same shuffled order on every run (the notes' differs each time), which the test replays
    train_loader = DataLoader(dataset=train_data,batch_size=64,shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    test_loader = DataLoader(dataset=test_data,batch_size=64,shuffle=False)

    #创建网络模型
    # notes: if __name__ == "__main__":   (model.py's shape check pasted into the script; main() is the script here)
    tudui=Tudui()
    input=torch.ones((64,3,32,32))
    output=tudui(input)
    print(output.shape)
    # added: a seeded initialisation, so a run is repeatable and the test can build the same starting weights
    torch.manual_seed(args.seed)
    tudui=Tudui()
    # notes: tudui=tudui.cuda()
    tudui=tudui.to(device)

    #损失函数
    loss_fn=nn.CrossEntropyLoss()
    # notes: loss_fn=loss_fn.cuda()
    loss_fn=loss_fn.to(device)
    #优化器
    learning_rate=1e-2
    optimizer=torch.optim.SGD(tudui.parameters(),lr=learning_rate)

    #记录训练的次数
    total_train_step=0
    #记录测试的次数
    total_test_step=0
    #训练的轮数
    # notes: epoch=10
    epoch=args.epochs or 10

    #添加tensorboard
    # notes: writer = SummaryWriter("../logs_train")
    writer = SummaryWriter(str(args.output_dir / "logs_train"))

    for i in range(epoch):
        print("--------第{}轮训练开始---------".format(i+1))

        #训练步骤开始
        for data in train_loader:
            imgs,targets=data
            # notes: imgs=imgs.cuda()
            imgs=imgs.to(device)
            # notes: targets=targets.cuda()
            targets=targets.to(device)
            outputs=tudui(imgs)
            loss=loss_fn(outputs,targets)
            # 优化器优化模型
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_train_step = total_train_step+1
            if total_train_step % 100 == 0:
                print("训练次数：{}，Loss：{}".format(total_train_step,loss.item()))
                writer.add_scalar("train_loss",loss.item(),total_train_step)

        #测试步骤
        total_test_loss= 0
        total_accuracy = 0
        with torch.no_grad():
            for data in test_loader:
                imgs,targets=data
                # notes: imgs=imgs.cuda()
                imgs=imgs.to(device)
                # notes: targets=targets.cuda()
                targets=targets.to(device)
                outputs=tudui(imgs)
                loss=loss_fn(outputs,targets)
                total_test_loss=total_test_loss+loss.item()
                accuracy = (outputs.argmax(1)==targets).sum()
                total_accuracy=total_accuracy+accuracy
        print("整体数据集上的loss：{}".format(total_test_loss))
        print("整体数据集上的正确率：{}".format(total_accuracy/test_data_size))
        writer.add_scalar("test_accuracy",total_accuracy/test_data_size,total_test_step)
        writer.add_scalar("test_loss",total_test_loss,total_test_step)
        total_test_step=total_test_step+1

    writer.close()
    return tudui


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "cifar10"),
                        help="synthetic: built-in shapes, offline; cifar10: torchvision's (default: %(default)s)")
    parser.add_argument("--data-path", type=Path, default=Path("data"),
                        help="CIFAR-10's root, for both sections (the notes: ./dataset and ../data) (default: data)")
    parser.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-path if missing")
    parser.add_argument("--synthetic-size", type=positive, default=12000,
                        help="synthetic training images; the test set gets a quarter (default: %(default)s)")
    parser.add_argument("--epochs", type=positive, default=None,
                        help="epochs of both sections (default: the notes' 20 for 模型训练, 10 for 完整项目代码)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="完整项目代码's device; cuda is the gpu版本 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="Tudui's initialisation, the shuffling and the synthetic images (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/03_cifar_train/notes_code"),
                        help="TensorBoard events go to <output-dir>/logs_train (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Both sections in the notes' order; returns the trained nets (tests compare Tudui's weights with train.py's)."""
    args = get_args_parser().parse_args(argv)
    tom = model_training(args)
    tudui = full_project(args)
    return {"tom": tom, "tudui": tudui}


if __name__ == "__main__":
    main()
