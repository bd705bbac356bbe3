#!/usr/bin/env bash
# Adds LIIF Viewer to the Linux desktop (freedesktop.org): an application-menu entry that opens images,
# and its icon at 16 to 512 px in the hicolor theme. Optionally installs a built bundle as well.
#
#   install-linux.sh [--prefix DIR] [--bundle DIR | --exec PATH] [--uninstall]
#
#   --prefix DIR   where to install (default ~/.local, this user only; /usr/local for everyone, as root):
#                  DIR/share/applications/liif-viewer.desktop, DIR/share/icons/hicolor/NxN/apps/liif-viewer.png
#   --bundle DIR   also copy the one-folder app built by packaging/build.sh to DIR/lib/liif-viewer and link
#                  DIR/bin/liif-viewer to it; the default when this script runs from inside a bundle
#   --exec PATH    the command the menu entry runs, when not installing a bundle (default: liif-viewer
#                  found on PATH, e.g. from `pip install`)
#   --uninstall    remove what an install with the same --prefix added
#
# Runs from the repository (packaging/install-linux.sh, icons from packaging/icons, made by
# packaging/make_icons.py) or from a bundle (<bundle>/install-linux.sh). Afterwards it refreshes the
# desktop-file and icon caches when the tools are present (update-desktop-database, gtk-update-icon-cache).
set -euo pipefail

APP=liif-viewer
SIZES=(16 24 32 48 64 128 256 512)
here=$(cd "$(dirname "$0")" && pwd)
prefix="$HOME/.local"
bundle=""
exec_path=""
uninstall=0

die() { echo "install-linux: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --bundle) bundle=${2:?--bundle needs a folder}; shift 2 ;;
    --bundle=*) bundle=${1#*=}; shift ;;
    --exec) exec_path=${2:?--exec needs a path}; shift 2 ;;
    --exec=*) exec_path=${1#*=}; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
mkdir -p "$prefix" 2>/dev/null || die "cannot create $prefix"
prefix=$(cd "$prefix" && pwd)

if [ -f "$here/$APP.desktop" ] && [ -x "$here/$APP" ]; then   # running from inside a bundle
  desktop_src="$here/$APP.desktop"; icons_src="$here/icons/hicolor"
  if [ -z "$bundle" ] && [ -z "$exec_path" ]; then bundle=$here; fi
else                                                          # running from the repository
  desktop_src="$here/linux/$APP.desktop"; icons_src="$here/icons/hicolor"
fi

apps_dir="$prefix/share/applications"
icons_dir="$prefix/share/icons/hicolor"
lib_dir="$prefix/lib/$APP"
bin_link="$prefix/bin/$APP"

refresh_caches() {
  if command -v update-desktop-database >/dev/null 2>&1 && [ -d "$apps_dir" ]; then
    update-desktop-database -q "$apps_dir" || true
  fi
  # Refresh an existing icon cache (a stale one hides new icons); do not create one where none was.
  if command -v gtk-update-icon-cache >/dev/null 2>&1 &&
     { [ -f "$icons_dir/icon-theme.cache" ] || [ -f "$icons_dir/index.theme" ]; }; then
    gtk-update-icon-cache -q -t -f "$icons_dir" || true
  fi
}

if [ "$uninstall" = 1 ]; then
  rm -f "$apps_dir/$APP.desktop"
  for n in "${SIZES[@]}"; do rm -f "$icons_dir/${n}x${n}/apps/$APP.png"; done
  if [ -L "$bin_link" ] && [[ "$(readlink "$bin_link")" == "$lib_dir/"* ]]; then rm -f "$bin_link"; fi
  if [ -x "$lib_dir/$APP" ] && [ -d "$lib_dir/_internal" ]; then rm -rf "$lib_dir"; fi
  refresh_caches
  echo "install-linux: removed LIIF Viewer from $prefix"
  exit 0
fi

[ -f "$desktop_src" ] || die "$desktop_src is missing"
for n in "${SIZES[@]}"; do
  [ -f "$icons_src/${n}x${n}/apps/$APP.png" ] ||
    die "$icons_src/${n}x${n}/apps/$APP.png is missing; run: python packaging/make_icons.py"
done

if [ -n "$bundle" ]; then
  [ -x "$bundle/$APP" ] && [ -d "$bundle/_internal" ] || die "$bundle is not a LIIF Viewer bundle (run packaging/build.sh)"
  bundle=$(cd "$bundle" && pwd)
  if [ "$bundle" != "$lib_dir" ]; then
    rm -rf "$lib_dir.new"
    mkdir -p "$prefix/lib"
    cp -a "$bundle" "$lib_dir.new"
    rm -rf "$lib_dir"
    mv "$lib_dir.new" "$lib_dir"
  fi
  mkdir -p "$prefix/bin"
  ln -sfn "$lib_dir/$APP" "$bin_link"
  exec_path=$bin_link
elif [ -z "$exec_path" ]; then
  exec_path=$(command -v "$APP" || true)
  if [ -z "$exec_path" ]; then
    echo "install-linux: warning: '$APP' is not on PATH; the menu entry runs '$APP' and works once it is" >&2
    exec_path=$APP
  fi
fi
case "$exec_path" in
  *[\"\'\\\$\`\|\&%]*) die "the command path '$exec_path' has a character a desktop entry cannot hold" ;;
  *[[:space:]]*) exec_quoted="\"$exec_path\"" ;;
  *) exec_quoted=$exec_path ;;
esac

mkdir -p "$apps_dir"
tmp=$(mktemp "$apps_dir/.$APP.XXXXXX")
sed -e "s|^Exec=.*|Exec=$exec_quoted %f|" -e "s|^TryExec=.*|TryExec=$exec_path|" "$desktop_src" >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$apps_dir/$APP.desktop"
for n in "${SIZES[@]}"; do
  install -D -m 644 "$icons_src/${n}x${n}/apps/$APP.png" "$icons_dir/${n}x${n}/apps/$APP.png"
done
refresh_caches
echo "install-linux: installed the menu entry $apps_dir/$APP.desktop (runs $exec_path) and icons in $icons_dir"
if [ -n "$bundle" ]; then echo "install-linux: the app is in $lib_dir, linked from $bin_link"; fi
