"""`python -m metric.gallery <command>`: enroll, verify, identify, list, remove, info. Bad input exits 2, never a
trace."""

from __future__ import annotations

import argparse
import sys
import time

from datamodules.images import BadImage
from metric.cli import run_command
from metric.deploy.gallery.store import INDEXES, STORAGES, GalleryStore
from metric.deploy.sqlite import stored_time
from metric.errors import ConfigError

MODEL_COMMANDS = ("enroll", "verify", "identify")  # only these load the model stack (torch, timm, the front end)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metric.gallery", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    enroll = sub.add_parser("enroll", help="enroll one identity, or a folder of identities")
    enroll.add_argument("--gallery", required=True)
    enroll.add_argument("--ckpt", help="checkpoint (required to create the gallery)")
    enroll.add_argument("--identity", help="the identity's name (with IMAGE...)")
    enroll.add_argument("--from-folder", help="enroll every <ROOT>/<identity>/<images>")
    enroll.add_argument("--replace", action="store_true", help="replace the template instead of adding images")
    enroll.add_argument("--storage", choices=STORAGES, default="float32", help="template storage of a new gallery")
    enroll.add_argument("--index", choices=INDEXES, default="exact", help="search index of a new gallery")
    enroll.add_argument("images", nargs="*", metavar="IMAGE")
    verify = sub.add_parser("verify", help="1:1: is IMAGE the claimed identity? exit 0 accept, 1 reject")
    verify.add_argument("--gallery", required=True)
    verify.add_argument("--ckpt")
    verify.add_argument("--identity", required=True)
    verify.add_argument("image", metavar="IMAGE")
    identify = sub.add_parser("identify", help="1:N: the top-k enrolled identities for IMAGE")
    identify.add_argument("--gallery", required=True)
    identify.add_argument("--ckpt")
    identify.add_argument("--top-k", type=int, default=5)
    identify.add_argument("--all-faces", action="store_true", help="identify each face in IMAGE, not only the largest")
    identify.add_argument("image", metavar="IMAGE")
    for command in (enroll, verify, identify):
        command.add_argument(
            "--no-detect",
            action="store_true",
            help="the images are already cropped, aligned faces: skip the checkpoint's face front end",
        )
        command.add_argument(
            "--liveness",
            metavar="CKPT",
            help="a liveness checkpoint (+experiment=liveness) that checks every image first; enroll "
            "records it as the gallery's guard, which verify and identify then use by default",
        )
    for name in ("list", "info"):
        sub.add_parser(name).add_argument("--gallery", required=True)
    remove = sub.add_parser("remove")
    remove.add_argument("--gallery", required=True)
    remove.add_argument("name")
    return p


def print_liveness(check) -> None:
    print(check.describe() if check is not None else "liveness  not checked (no liveness model guards this gallery)")


def print_matches(matches, known: bool) -> None:
    for rank, match in enumerate(matches, 1):
        print(f"{rank}. {match.identity}  {match.score:.4f}")
    print(f"-> {matches[0].identity}" if known else "-> unknown (best score below the threshold)")


def run(args: argparse.Namespace) -> int:
    if args.command in MODEL_COMMANDS:
        return run_model_command(args)
    store = GalleryStore(args.gallery)
    if args.command == "list":
        for name, count, enrolled_at in store.list():
            print(f"{name}\t{count} image(s)\tenrolled {stored_time(enrolled_at)}")
    elif args.command == "remove":
        store.remove(args.name)
        print(f"removed {args.name}")
    else:
        for key, value in vars(store.info()).items():
            print(f"{key:15} {value}")
    return 0


def run_model_command(args: argparse.Namespace) -> int:
    """enroll, verify, identify: the commands that embed images."""
    from metric.deploy.gallery import Gallery

    if args.command == "enroll":
        return run_enroll(args)
    if args.command == "verify":
        gallery = Gallery.open(args.gallery, ckpt=args.ckpt, detect=not args.no_detect, liveness=args.liveness)
        result = gallery.verify(args.identity, args.image)
        print(result.describe())
        return 0 if result.accepted else 1
    if args.command == "identify":
        return run_identify(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse allows only the commands above


def run_enroll(args: argparse.Namespace) -> int:
    """enroll: one identity from its images, or every identity of --from-folder; then the gallery's liveness guard."""
    from metric.deploy.gallery import Gallery

    gallery = Gallery.open(
        args.gallery,
        ckpt=args.ckpt,
        storage=args.storage,
        index=args.index,
        detect=not args.no_detect,
        liveness=args.liveness,
        enrolling=True,
    )
    if args.from_folder:
        from tqdm import tqdm

        start = time.perf_counter()
        count, skipped = gallery.enroll_folder(
            args.from_folder, replace=args.replace, progress=lambda xs: tqdm(xs, desc="enroll", unit="identity")
        )
        print(f"enrolled {count} identities in {time.perf_counter() - start:.1f} s")
        if skipped:
            print(
                f"skipped {len(skipped)} image(s), unreadable, without a face or rejected as attacks:\n  "
                + "\n  ".join(skipped[:10])
            )
    else:
        if not args.identity:
            raise ConfigError("enroll needs --identity NAME IMAGE... or --from-folder ROOT.")
        gallery.enroll(args.identity, args.images, replace=args.replace)
        print(f"enrolled {args.identity} from {len(args.images)} image(s)")
    gate = gallery.verifier.liveness
    print(
        f"liveness  every image checked live by {gate.path}"
        if gate is not None
        else "liveness  not checked (no liveness model guards this gallery)"
    )
    return 0


def run_identify(args: argparse.Namespace) -> int:
    """identify: the top-k matches of the largest face (or of every face, --all-faces); 1 when the gate rejects."""
    from metric.deploy.gallery import Gallery

    gallery = Gallery.open(args.gallery, ckpt=args.ckpt, detect=not args.no_detect, liveness=args.liveness)
    found = gallery.identify_all(args.image, args.top_k) if args.all_faces else gallery.identify(args.image, args.top_k)
    print_liveness(found.liveness)
    if found.liveness is not None and not found.liveness.live:
        print("-> rejected as a presentation attack; nothing was matched")
        return 1
    if args.all_faces:
        for number, (face, matches, known) in enumerate(found.faces, 1):
            box = ", ".join(f"{v:.0f}" for v in face.box) if face.box else "whole image"
            print(f"face {number} at ({box}):")
            print_matches(matches, known)
        return 0
    print_matches(found.matches, found.known)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_command(lambda: run(args), errors=(ConfigError, BadImage))


if __name__ == "__main__":
    sys.exit(main())
