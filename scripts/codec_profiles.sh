#!/usr/bin/env bash
# Writes data/codecs/<model>.json: per boundary and codec of each zoo model (224x224, width 1,
# 1000 classes), the encoded bytes, ratio, encode/decode time and the top-1 agreement and output
# error against the float32 path, measured by codec_fidelity on this machine (one thread). These
# files are the codec profiles of the decision core (split_sim --codecs, decision::LoadCodecProfile),
# as data/profiles/*.json are its unit profiles; each records the host, CPU and date.
#
#   scripts/codec_profiles.sh                      # builds codec_fidelity in build/ first
#   MODELS="resnet18" INPUTS=8 scripts/codec_profiles.sh
#   CODEC_FIDELITY=/path/to/codec_fidelity scripts/codec_profiles.sh   # no build
#
# Inputs are real photographs that Debian packages ship (device/image_inputs.h): scikit-image's
# astronaut, chelsea, coffee, rocket, motorcycle_left and camera, scikit-learn's china and flower,
# matplotlib's grace_hopper. Where a package is not installed, its .deb is fetched with
# `apt-get download` (no install, no root) into $BUILD_DIR/codec_images and only those files are
# unpacked; FETCH_IMAGES=0 skips that, and codec_fidelity then uses what it finds (or its
# synthetic stand-in, which the JSON "images" field reports).
#
# Knobs (environment): MODELS ("resnet18 mobilenetv2 alexnet vgg16"), INPUTS (32), VGG_INPUTS (16:
# VGG-16 takes ~13 s per input here), REPEATS (5), THREADS (1), OUT_DIR (data/codecs). About 7
# minutes for the four models on one core of a 2-core AMD EPYC VM.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
OUT_DIR=${OUT_DIR:-$ROOT/data/codecs}
MODELS=${MODELS:-resnet18 mobilenetv2 alexnet vgg16}
INPUTS=${INPUTS:-32}
VGG_INPUTS=${VGG_INPUTS:-16}
REPEATS=${REPEATS:-5}
THREADS=${THREADS:-1}
FETCH_IMAGES=${FETCH_IMAGES:-1}

if [[ -z "${CODEC_FIDELITY:-}" ]]; then
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DSPLITINFER_BUILD_BENCHMARKS=OFF
  fi
  ninja -C "$BUILD_DIR" -j2 codec_fidelity  # the machine this was written on has 2 cores
  CODEC_FIDELITY=$BUILD_DIR/bin/codec_fidelity
fi

# The pictures, in the order of KnownImagePaths() (device/image_inputs.cc), with their packages.
SK=/usr/lib/python3/dist-packages/skimage/data
SL=/usr/lib/python3/dist-packages/sklearn/datasets/images
MPL=/usr/share/matplotlib/mpl-data/sample_data
pictures=(
  "python3-skimage $SK/astronaut.png" "python3-skimage $SK/chelsea.png"
  "python3-skimage $SK/coffee.png" "python3-skimage $SK/rocket.jpg"
  "python3-skimage $SK/motorcycle_left.png" "python3-skimage $SK/camera.png"
  "python3-sklearn $SL/china.jpg" "python3-sklearn $SL/flower.jpg"
  "python-matplotlib-data $MPL/grace_hopper.jpg"
)
CACHE=$BUILD_DIR/codec_images
images=()
for entry in "${pictures[@]}"; do
  pkg=${entry%% *} path=${entry#* }
  if [[ -f "$path" ]]; then images+=("$path"); continue; fi
  if [[ -f "$CACHE/root$path" ]]; then images+=("$CACHE/root$path"); continue; fi
  [[ "$FETCH_IMAGES" == 1 ]] || continue
  mkdir -p "$CACHE/debs" "$CACHE/root"
  deb=$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  if [[ -z "$deb" ]]; then
    (cd "$CACHE/debs" && apt-get download "$pkg" >/dev/null 2>&1) ||
      echo "codec_profiles.sh: apt-get download $pkg failed; going on without it" >&2
    deb=$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  fi
  if [[ -n "$deb" ]]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -xf - -C "$CACHE/root" ".$path" 2>/dev/null || true
  fi
  if [[ -f "$CACHE/root$path" ]]; then images+=("$CACHE/root$path"); fi
done
image_args=()
if [[ ${#images[@]} -gt 0 ]]; then
  image_args=(--images "$(IFS=,; echo "${images[*]}")")
  echo "codec_profiles.sh: ${#images[@]} pictures" >&2
else
  echo "codec_profiles.sh: no picture found: codec_fidelity uses its synthetic stand-in" >&2
fi

mkdir -p "$OUT_DIR"
for model in $MODELS; do
  n=$INPUTS
  [[ "$model" == vgg16 ]] && n=$VGG_INPUTS
  echo "codec_fidelity $model ($n inputs) ..." >&2
  start=$SECONDS
  tmp=$(mktemp "$OUT_DIR/.$model.json.XXXXXX")
  if ! "$CODEC_FIDELITY" --model "$model" --inputs "$n" --repeats "$REPEATS" \
      --threads "$THREADS" "${image_args[@]}" --json --out "$tmp"; then
    rm -f "$tmp"
    echo "codec_profiles.sh: codec_fidelity failed for $model" >&2
    exit 1
  fi
  # Pictures unpacked into the cache are named by the path their package installs them at.
  sed -i "s|\"$CACHE/root/usr/|\"/usr/|g" "$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$OUT_DIR/$model.json"
  echo "wrote $OUT_DIR/$model.json ($((SECONDS - start)) s)" >&2
done
