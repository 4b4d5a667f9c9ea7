#!/usr/bin/env bash
# The face front end's evidence (docs/faces.md): ORL crops vs ORL pasted into photos, LFW pairs, ORL 5-fold CV.
# Run from the repository root; outputs under $OUT (default /tmp/faces_evidence). About 25 minutes on 2 cores.
# docs/faces.md reports MARGIN=-0.1 (the dlib model's face.margin) and the default 0.1.
set -euo pipefail
OUT=${OUT:-/tmp/faces_evidence}
ORL=../shared/data/att_faces
LFW=../shared/data/lfw
SPLIT="datamodule=folder datamodule.split=ordered datamodule.split_counts=[20,5,15] datamodule.channels=1 datamodule.image_size=[32,32]"
mkdir -p "$OUT"
[ -d "$OUT/orl_pasted" ] || python bench/paste_faces.py $ORL "$OUT/orl_pasted" --seed 0

MARGIN=${MARGIN:-0.1}  # face.margin of the dlib model; ORL's crops are tight: -0.1 keeps the aligned crop inside them
for face in none dlib; do  # the small-data recipe on s1-s20 (val s21-s25), crops in, front end $face
  [ -f "$OUT/train_$face/done" ] || { python -m metric.train +experiment=small_real $SPLIT datamodule.root=$ORL \
      face=$face $([ $face = dlib ] && echo face.margin=$MARGIN) hydra.run.dir="$OUT/train_$face" && touch "$OUT/train_$face/done"; }
done
ckpt() { ls "$OUT/train_$1"/checkpoints/best-*.ckpt | head -1; }

ev() { name=$1; shift; python -m metric.evaluate "$@" hydra.run.dir="$OUT/eval_$name" >/dev/null; \
       python -c "import json,sys; s=json.load(open('$OUT/eval_$name/summary.json')); print('$name', {k: s[k] for k in s if k in ('test_eer','accuracy_mean','accuracy_std','eer_all_pairs','face_detection_rate','faces_missed_used_whole','data_face_detection_rate_test')})"; }
# test identities s26-s40: original crops vs the same photos pasted into larger frames
ev none_on_crops ckpt=$(ckpt none) $SPLIT datamodule.root=$ORL threshold_from=val
ev none_on_photos ckpt=$(ckpt none) $SPLIT datamodule.root="$OUT/orl_pasted" threshold_from=val
ev none_on_photos_dlib ckpt=$(ckpt none) $SPLIT datamodule.root="$OUT/orl_pasted" face=dlib face.margin=$MARGIN threshold_from=val
ev dlib_on_crops ckpt=$(ckpt dlib) $SPLIT datamodule.root=$ORL threshold_from=val
ev dlib_on_photos ckpt=$(ckpt dlib) $SPLIT datamodule.root="$OUT/orl_pasted" threshold_from=val
# LFW View 2 (10 folds of official pairs): people never seen in training
ev lfw_none ckpt=$(ckpt none) protocol=pairs pairs_file=$LFW/pairs.txt root=$LFW/lfw-deepfunneled
ev lfw_none_dlib ckpt=$(ckpt none) protocol=pairs pairs_file=$LFW/pairs.txt root=$LFW/lfw-deepfunneled face=dlib face.margin=$MARGIN
ev lfw_dlib ckpt=$(ckpt dlib) protocol=pairs pairs_file=$LFW/pairs.txt root=$LFW/lfw-deepfunneled
