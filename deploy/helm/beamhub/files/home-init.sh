# home-init: make the user's own folder in the shared home volume before the session starts.
# Runs as the user (the pod's runAsUser), never as root: the folder it makes is the user's.
# $1: the folder under the volume's top (the session's subPath), "@UID@" standing for the uid.
# No curly braces in this file: KubeSpawner formats every string of an init container.
set -eu
top=/beamhub-home-root
me=$(id -u)
rel=$(printf '%s' "$1" | sed "s/@UID@/$me/g")
case "/$rel/" in
  //|*/../*|*/./*)
    echo "home-init: refusing the folder name '$rel'" >&2
    exit 1 ;;
esac
path="$top/$rel"
if [ ! -e "$path" ] && ! mkdir -p -m 0700 "$path"; then
  echo "home-init: cannot create $path as uid $me: the home volume's top folder must let users create their folders (chmod 1733 on it), or create the folder beforehand, owned by uid $me" >&2
  exit 1
fi
owner=$(stat -c %u "$path")
if [ "$owner" != "$me" ]; then
  echo "home-init: $path belongs to uid $owner, not to this user (uid $me): the session would not be able to write its home; ask the operator to give it to uid $me" >&2
  exit 1
fi
echo "home-init: $path is ready for uid $me"
