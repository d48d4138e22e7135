#!/usr/bin/env bash
# Installs the system packages Screenreel runs on, only when something is missing.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need chromium chromium
# Captures on the video's clock run in the headless shell (jobs/media/virtual_time.py): the same Chromium, built to
# render a page only when asked.
[ -x /usr/lib/chromium/chromium-headless-shell ] || missing+=(chromium-headless-shell)
need ffmpeg ffmpeg
need ffprobe ffmpeg
need espeak-ng espeak-ng
need fc-list fontconfig
need redis-server redis-server
# Pushpin holds SSE streams in the scale-out set-up (docs/live-events.md); its tests run a real one.
need pushpin pushpin
need zurl zurl
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || missing+=(fonts-dejavu-core)
# Cards are laid out by Chromium: colour emoji and Chinese, Japanese and Korean titles need these fonts.
# (grep reads the whole list: with pipefail, `fc-list | grep -q` fails when grep stops early and fc-list
# gets SIGPIPE, and the fonts were reinstalled on every run.)
fonts="$(fc-list 2>/dev/null || true)"
grep -q "Noto Color Emoji" <<<"$fonts" || missing+=(fonts-noto-color-emoji)
grep -q "Noto Sans CJK" <<<"$fonts" || missing+=(fonts-noto-cjk)
# The tests read redacted stills and frames with OCR.
need tesseract tesseract-ocr
[ -d /usr/share/tesseract-ocr/5/tessdata ] && ls /usr/share/tesseract-ocr/5/tessdata/eng.* >/dev/null 2>&1 \
  || missing+=(tesseract-ocr-eng)
python_ok=0
for py in python3.11 python3; do
  if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys, venv, ensurepip; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    python_ok=1; break
  fi
done
[ "$python_ok" = 1 ] || missing+=(python3 python3-venv python3-dev)

# Chromium keeps its sandbox, which it refuses as root: a worker running as root starts it as this
# unprivileged user (jobs/media/chromium-sandboxed). A worker that is not root needs no such user.
if [ "$(id -u)" = 0 ] && ! id screenreel-browser >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin screenreel-browser
  echo "Created the unprivileged user screenreel-browser (Chromium's sandbox)."
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "Installing system packages: ${unique[*]}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${unique[@]}" >/dev/null
echo "System packages ready."
