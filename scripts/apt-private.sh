# A private apt state: `apt-get download` from the Debian archive the system already uses,
# for another architecture or suite, without touching the system's sources, lists, dpkg
# architectures or status. Sourced by scripts/cross.sh and scripts/qemu-aarch64-system-runner.
#
#   apt_private DIR ARCH SUITE...   # SUITE may start with '~', replaced by this release's codename
#   (cd somewhere && apt-get "${APT_PRIVATE[@]}" download PACKAGE...)
#
# The mirror is read from the system's own sources (the entry serving this release), so no
# archive host is written here. Facts behind it: shared/reference/cross-and-qemu.md.

# The archive URI the system's sources use for release $1, on stdout (empty when none).
apt_private_mirror() {
  local codename=$1 found="" f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    found+=$(awk -v want="$codename" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit }
      }' "$f")$'\n'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    found+=$(awk -v want="$codename" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; suites = ""; types = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          else if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
          else if ($i ~ /^Types:/) { types = $i " " }
          else if ($i ~ /^Enabled:/) { enabled = tolower($i) }
        }
        if (enabled ~ /no/ || types !~ /[ \t]deb[ \t]/) next
        n = split(suites, s, /[ \t]+/)
        for (j = 1; j <= n; j++) if (s[j] == want) { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$f")$'\n'
  done
  found=${found#"${found%%[![:space:]]*}"}
  printf '%s\n' "${found%%$'\n'*}"
}

# Sets up DIR as an apt state for ARCH holding SUITE... (component main) of the system's
# Debian mirror, refreshes its lists, and leaves the options in the array APT_PRIVATE.
apt_private() {
  local dir=$1 arch=$2 codename mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  shift 2
  codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
  [[ -n $codename ]] || { echo "apt_private: no VERSION_CODENAME in /etc/os-release" >&2; return 1; }
  mirror=$(apt_private_mirror "$codename")
  [[ -n $mirror ]] || { echo "apt_private: no apt source serves '$codename'" >&2; return 1; }
  [[ -r $keyring ]] || { echo "apt_private: $keyring is missing (debian-archive-keyring)" >&2; return 1; }
  local suites=("${@/#\~/$codename}")
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" "$dir/preferences.d"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$mirror" "${suites[*]}" "$keyring" >"$dir/sources.list.d/debian.sources"
  APT_PRIVATE=(
    -o "Dir::State=$dir" -o "Dir::State::Lists=$dir/lists" -o "Dir::State::status=/dev/null"
    -o "Dir::Cache=$dir/cache" -o "Dir::Etc::SourceList=$dir/sources.list"
    -o "Dir::Etc::SourceParts=$dir/sources.list.d" -o "Dir::Etc::Preferences=$dir/preferences"
    -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
    -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o "APT::Sandbox::User=root"
  )
  apt-get -qq "${APT_PRIVATE[@]}" update
}
