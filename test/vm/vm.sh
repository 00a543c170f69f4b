#!/bin/bash
# vm.sh: runs one command as root inside a small QEMU VM booted on Debian's stock kernel, which has
# IPVS (many CI and container hosts do not). The IPVS suites use it; nothing else needs it.
#
#   test/vm/vm.sh [--timeout SECONDS] -- CMD [ARG...]    run CMD in the current directory, in the VM
#   test/vm/vm.sh --prepare                              only fetch the kernel and build the initramfs
#
# The guest's / is the host's / (9p, read-only) under a tmpfs overlay, so CMD runs the host's own node,
# ip, iptables, nft and ipvsadm; the current directory is shared writable; /tmp and /run are fresh.
# CMD's stdout and stderr are printed after the VM stops; its exit status is ours. 124: timeout,
# 125: the VM could not run it. The VM has no network card: loopback and namespaces it makes only.
# Env: VIPDNS_VM_CACHE (default /var/cache/vipdns-test-vm), VIPDNS_VM_MEM (MiB, 1024),
#      VIPDNS_VM_ACCEL (auto|kvm|tcg).
set -euo pipefail
CACHE=${VIPDNS_VM_CACHE:-/var/cache/vipdns-test-vm}
MEM=${VIPDNS_VM_MEM:-1024}
ACCEL=${VIPDNS_VM_ACCEL:-auto}
TIMEOUT=600
PREPARE_ONLY=0
# What the suites load: IPVS and its schedulers, the iptables rules of the IPVS driver (marks,
# -m ipvs, NAT), the nftables dataplane, veth/bridge for namespace topologies; modprobe adds their
# dependencies. ON_DEMAND modules are in the initramfs too, loaded only when a command asks (e.g.
# `ipvsadm -s sed`, `sysctl net.bridge...`).
MODULES="virtio_pci virtio_console 9pnet_virtio 9p overlay veth dummy bridge
 ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh ip_vs_lc ip_vs_wlc ip_vs_mh xt_ipvs
 nf_conntrack nf_nat nfnetlink nf_conntrack_netlink nf_tables nft_numgen nft_nat nft_ct
 nft_compat nft_chain_nat nft_masq nft_redir nft_fib_ipv4 nft_reject_inet
 ip_tables iptable_filter iptable_nat iptable_mangle ip6_tables ip6table_filter ip6table_nat
 ip6table_mangle xt_mark xt_nat xt_MASQUERADE xt_addrtype xt_conntrack xt_comment xt_multiport
 xt_state xt_tcpudp ipt_REJECT ip_set xt_set xt_connmark"
ON_DEMAND="ip_vs_dh ip_vs_fo ip_vs_lblc ip_vs_lblcr ip_vs_nq ip_vs_ovf ip_vs_sed ip_vs_ftp
 br_netfilter nft_limit nft_fib_inet xt_statistic xt_recent"

die() { echo "vm.sh: $*" >&2; exit 125; }

while [ $# -gt 0 ]; do
  case $1 in
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
    --prepare) PREPARE_ONLY=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || [ $PREPARE_ONLY = 1 ] || die "usage: vm.sh [--timeout S] -- CMD [ARG...]"

need=()
for tool in qemu-system-x86_64:qemu-system-x86 cpio:cpio depmod:kmod xz:xz-utils flock:util-linux apt-get:apt; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
[ -x /bin/busybox ] || need+=(busybox-static)
[ ${#need[@]} = 0 ] || die "missing packages: ${need[*]} (apt-get install ${need[*]}; .ci/run installs them)"

# PID 1 of the guest (busybox): modules, the overlay root, then CMD in a chroot.
write_init() {
  cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
modprobe -a $(cat /etc/modules.load) 2>/dev/null
P=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /lower /rw /host
mount -t 9p -o $P,ro,cache=loose hostroot /lower || reboot -f
mount -t tmpfs rw /rw; mkdir /rw/u /rw/w
mount -t overlay -o lowerdir=/lower,upperdir=/rw/u,workdir=/rw/w root /host || mount --bind /lower /host
for d in proc sys dev; do mount --rbind /$d /host/$d; done
for d in tmp run var/tmp; do mount -t tmpfs -o mode=1777 tmpfs /host/$d; done
# The guest kernel's modules, where the host's modprobe in the chroot looks for them.
K=/lib/modules/$(uname -r); mkdir -p /host$K; mount --bind $K /host$K
mkdir -p /host/run/vm; mount -t 9p -o $P ctl /host/run/vm
W=$(cat /host/run/vm/wd); mkdir -p "/host$W"; mount -t 9p -o $P work "/host$W"
ip link set lo up
chroot /host /bin/bash /run/vm/run.sh </dev/null >/host/run/vm/out 2>/host/run/vm/err
echo $? >/host/run/vm/rc
sync; reboot -f
EOF
  chmod +x "$1"
}

# Once per cache: the kernel package of this Debian release, and an initramfs with busybox and
# the modules above (with their dependencies). Downloads come from the host's apt sources only.
# The cache is keyed by the module list: a changed list rebuilds the initramfs.
KEY="$MODULES / $ON_DEMAND"
ready() { [ "$(cat "$CACHE/ready" 2>/dev/null)" = "$KEY" ]; }
prepare() {
  ready && return 0
  mkdir -p "$CACHE" || die "cannot create $CACHE"
  exec 9>"$CACHE/.lock"; flock 9
  ready && return 0
  local pkg b=$CACHE/build
  resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
  pkg=$(resolve)
  [ -n "$pkg" ] || { apt-get update -qq >/dev/null 2>&1 || true; pkg=$(resolve); }
  [ -n "$pkg" ] || die "cannot find Debian's kernel package (linux-image-amd64) in the apt sources"
  rm -rf "$b"; mkdir -p "$b/deb" "$b/k" "$b/ir"
  (cd "$b/deb" && apt-get download -q "$pkg" >"$b/apt.log" 2>&1) || { cat "$b/apt.log" >&2; die "apt-get download $pkg failed"; }
  dpkg -x "$b"/deb/*.deb "$b/k"
  local kv ir=$b/ir
  kv=$(ls "$b/k/lib/modules")
  depmod -b "$b/k" "$kv"
  mkdir -p "$ir"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,lib/modules/$kv}
  cp /bin/busybox "$ir/bin/busybox"
  for m in $MODULES $ON_DEMAND; do modprobe -d "$b/k" -S "$kv" --show-depends "$m"; done |
    awk '$1 == "insmod" { print $2 }' | sort -u | while read -r f; do
      mkdir -p "$ir$(dirname "${f#"$b/k"}")"; cp "$f" "$ir${f#"$b/k"}"
    done
  cp "$b/k/lib/modules/$kv"/modules.{order,builtin,builtin.modinfo} "$ir/lib/modules/$kv/" 2>/dev/null || true
  depmod -b "$ir" "$kv"
  echo $MODULES >"$ir/etc/modules.load"
  write_init "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$CACHE/initrd.img"
  cp "$b/k/boot/vmlinuz-$kv" "$CACHE/vmlinuz"
  echo "$pkg" >"$CACHE/kernel"
  rm -rf "$b"; echo "$KEY" >"$CACHE/ready"
  exec 9>&-
  echo "vm.sh: prepared $pkg in $CACHE" >&2
}

boot() { # $1: kvm|tcg; sets RC
  local accel=(-accel tcg -cpu max) smp=1
  [ "$1" = kvm ] && accel=(-accel kvm -cpu host) smp=2
  rm -f "$T/rc" "$T/out" "$T/err"
  set +e
  # In braces with stderr to the file: a qemu that aborts is reported there, not by this shell.
  { timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -nodefaults -no-user-config -machine q35 "${accel[@]}" \
    -m "$MEM" -smp "$smp" -no-reboot -display none -monitor none -nic none \
    -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off rdinit=/init" \
    -serial file:"$T/console.log" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$T",mount_tag=ctl,security_model=none \
    -virtfs local,path="$PWD",mount_tag=work,security_model=none,multidevs=remap; } 2>"$T/qemu.err"
  local q=$?
  set -e
  if [ -s "$T/rc" ]; then RC=$(cat "$T/rc"); elif [ $q = 124 ]; then RC=124; else RC=125; fi
}

prepare
[ $PREPARE_ONLY = 1 ] && exit 0
[ "$PWD" != / ] || die "run it from a project directory, not /"
T=$(mktemp -d /tmp/vipdns-vm.XXXXXX)
trap 'rm -rf "$T"' EXIT
echo "$PWD" >"$T/wd"
{ export -p | grep -vE '^declare -x (PWD|OLDPWD|SHLVL|_|TMPDIR)='
  printf 'cd %q || exit 125\nexec' "$PWD"; printf ' %q' "$@"; echo; } >"$T/run.sh"

# KVM when /dev/kvm is usable; some KVMs cannot run this kernel (e.g. nested without the MSRs it
# sets): then TCG, and that answer is kept for this host and kernel so later runs go straight to it.
if [ "$ACCEL" = auto ]; then
  KNOWN=$CACHE/accel-$(uname -n)-$(uname -r)
  ACCEL=$(cat "$KNOWN" 2>/dev/null || true)
  if [ -z "$ACCEL" ]; then
    ACCEL=tcg; [ -r /dev/kvm ] && [ -w /dev/kvm ] && ACCEL=kvm
  fi
  boot "$ACCEL"
  if [ "$ACCEL" = kvm ] && [ "$RC" = 125 ]; then
    echo "vm.sh: KVM cannot boot this kernel here ($(head -n 1 "$T/qemu.err")); using TCG (slower) from now on" >&2
    ACCEL=tcg; boot tcg
  fi
  [ "$RC" = 125 ] || echo "$ACCEL" >"$KNOWN"
else
  boot "$ACCEL"
fi
[ -f "$T/out" ] && cat "$T/out"
[ -f "$T/err" ] && cat "$T/err" >&2
if [ "$RC" -ge 124 ] && [ ! -s "$T/rc" ]; then
  echo "vm.sh: no exit status from the guest (rc $RC); console and qemu tails:" >&2
  tail -n 30 "$T/console.log" "$T/qemu.err" >&2 2>/dev/null || true
fi
exit "$RC"
