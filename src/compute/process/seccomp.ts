/**
 * The seccomp filter of every sandboxed step: a classic-BPF program that bwrap loads (`--seccomp FD`)
 * right before it executes the step's command, so bwrap's own setup (mounts, pivot_root, namespaces) is
 * done by then and everything the step runs is filtered, its children included.
 *
 * Allow by default, refuse what a contained program never needs and what widens the kernel's attack
 * surface (after Docker's default profile): mounts and the new mount API, namespaces, tracing other
 * processes, kernel modules and kexec, BPF, perf events, userfaultfd, the key rings, file handles,
 * swap, reboot, the clocks, accounting and quotas, io_uring, raw port I/O and the obsolete calls.
 * A refused call fails with EPERM. `clone` with a namespace flag is refused too; `clone3` answers
 * ENOSYS (its flags sit in memory a filter cannot read; the C library then falls back to `clone`).
 * Each architecture is checked with its own numbers; a call of any other ABI (i386 on x86_64, or
 * x32: numbers from 0x40000000) never reaches the table: x32 answers ENOSYS, another arch is killed.
 */

/** AUDIT_ARCH_* (linux/audit.h): EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE */
export const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;
export type SeccompArch = keyof typeof AUDIT_ARCH;

/** x86_64's x32 ABI: syscall numbers with this bit set */
export const X32_SYSCALL_BIT = 0x40000000;

export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  ERRNO: 0x00050000,
  ALLOW: 0x7fff0000,
} as const;
export const EPERM = 1;
export const ENOSYS = 38;

/** CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (CLONE_NEWTIME, 0x80, is clone's exit signal byte) */
export const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

/**
 * Refused calls and their numbers per architecture (arch/x86/entry/syscalls/syscall_64.tbl; aarch64
 * uses the generic table, include/uapi/asm-generic/unistd.h). Null: the arch has no such call.
 */
export const DENIED_SYSCALLS: Readonly<Record<string, Readonly<Record<SeccompArch, number | null>>>> = {
  // mounts and the file system tree
  mount: { x86_64: 165, aarch64: 40 },
  umount2: { x86_64: 166, aarch64: 39 },
  pivot_root: { x86_64: 155, aarch64: 41 },
  chroot: { x86_64: 161, aarch64: 51 },
  open_tree: { x86_64: 428, aarch64: 428 },
  move_mount: { x86_64: 429, aarch64: 429 },
  fsopen: { x86_64: 430, aarch64: 430 },
  fsconfig: { x86_64: 431, aarch64: 431 },
  fsmount: { x86_64: 432, aarch64: 432 },
  fspick: { x86_64: 433, aarch64: 433 },
  mount_setattr: { x86_64: 442, aarch64: 442 },
  // Linux 6.15; from 424 on every architecture numbers new calls alike
  open_tree_attr: { x86_64: 467, aarch64: 467 },
  // namespaces
  unshare: { x86_64: 272, aarch64: 97 },
  setns: { x86_64: 308, aarch64: 268 },
  // other processes' memory
  ptrace: { x86_64: 101, aarch64: 117 },
  process_vm_readv: { x86_64: 310, aarch64: 270 },
  process_vm_writev: { x86_64: 311, aarch64: 271 },
  kcmp: { x86_64: 312, aarch64: 272 },
  pidfd_getfd: { x86_64: 438, aarch64: 438 },
  // the kernel itself
  init_module: { x86_64: 175, aarch64: 105 },
  finit_module: { x86_64: 313, aarch64: 273 },
  delete_module: { x86_64: 176, aarch64: 106 },
  create_module: { x86_64: 174, aarch64: null },
  get_kernel_syms: { x86_64: 177, aarch64: null },
  query_module: { x86_64: 178, aarch64: null },
  kexec_load: { x86_64: 246, aarch64: 104 },
  kexec_file_load: { x86_64: 320, aarch64: 294 },
  bpf: { x86_64: 321, aarch64: 280 },
  perf_event_open: { x86_64: 298, aarch64: 241 },
  userfaultfd: { x86_64: 323, aarch64: 282 },
  io_uring_setup: { x86_64: 425, aarch64: 425 },
  io_uring_enter: { x86_64: 426, aarch64: 426 },
  io_uring_register: { x86_64: 427, aarch64: 427 },
  syslog: { x86_64: 103, aarch64: 116 },
  lookup_dcookie: { x86_64: 212, aarch64: 18 },
  // the key rings
  add_key: { x86_64: 248, aarch64: 217 },
  request_key: { x86_64: 249, aarch64: 218 },
  keyctl: { x86_64: 250, aarch64: 219 },
  // file handles (open_by_handle_at reads files past any bind mount)
  name_to_handle_at: { x86_64: 303, aarch64: 264 },
  open_by_handle_at: { x86_64: 304, aarch64: 265 },
  fanotify_init: { x86_64: 300, aarch64: 262 },
  // the machine
  reboot: { x86_64: 169, aarch64: 142 },
  swapon: { x86_64: 167, aarch64: 224 },
  swapoff: { x86_64: 168, aarch64: 225 },
  settimeofday: { x86_64: 164, aarch64: 170 },
  clock_settime: { x86_64: 227, aarch64: 112 },
  adjtimex: { x86_64: 159, aarch64: 171 },
  clock_adjtime: { x86_64: 305, aarch64: 266 },
  acct: { x86_64: 163, aarch64: 89 },
  quotactl: { x86_64: 179, aarch64: 60 },
  quotactl_fd: { x86_64: 443, aarch64: 443 },
  vhangup: { x86_64: 153, aarch64: 58 },
  nfsservctl: { x86_64: 180, aarch64: 42 },
  iopl: { x86_64: 172, aarch64: null },
  ioperm: { x86_64: 173, aarch64: null },
  modify_ldt: { x86_64: 154, aarch64: null },
  // obsolete
  uselib: { x86_64: 134, aarch64: null },
  ustat: { x86_64: 136, aarch64: null },
  sysfs: { x86_64: 139, aarch64: null },
  _sysctl: { x86_64: 156, aarch64: null },
};

/** Calls the filter looks into, per architecture. */
export const CHECKED_SYSCALLS: Readonly<Record<'clone' | 'clone3' | 'personality', Readonly<Record<SeccompArch, number>>>> = {
  clone: { x86_64: 56, aarch64: 220 },
  clone3: { x86_64: 435, aarch64: 435 },
  personality: { x86_64: 135, aarch64: 92 },
};

/**
 * The personalities a process may ask for (Docker's list): PER_LINUX, PER_LINUX32, UNAME26 with either,
 * and 0xffffffff (a query). Others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, …) weaken the process's own defences.
 */
export const ALLOWED_PERSONALITIES: readonly number[] = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** offsets in struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little-endian: low word first) */
export const SECCOMP_DATA = { nr: 0, arch: 4, arg0Low: 16 } as const;

/** classic BPF opcodes (linux/filter.h) */
export const BPF = {
  LD_W_ABS: 0x20,
  JEQ_K: 0x15,
  JGE_K: 0x35,
  JSET_K: 0x45,
  RET_K: 0x06,
} as const;

export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

type Target = string | 0;
type Line = { label: string } | { code: number; k: number; jt?: Target; jf?: Target };

const ld = (offset: number): Line => ({ code: BPF.LD_W_ABS, k: offset });
const jeq = (k: number, jt: Target, jf: Target = 0): Line => ({ code: BPF.JEQ_K, k, jt, jf });
const ret = (k: number): Line => ({ code: BPF.RET_K, k });

function archBlock(arch: SeccompArch): Line[] {
  const l = (name: string): string => `${arch}:${name}`;
  const lines: Line[] = [{ label: l('start') }, ld(SECCOMP_DATA.nr)];
  if (arch === 'x86_64') lines.push({ code: BPF.JGE_K, k: X32_SYSCALL_BIT, jt: 'enosys', jf: 0 });
  for (const nrs of Object.values(DENIED_SYSCALLS)) {
    const nr = nrs[arch];
    if (nr !== null) lines.push(jeq(nr, 'eperm'));
  }
  lines.push(
    jeq(CHECKED_SYSCALLS.clone3[arch], 'enosys'),
    jeq(CHECKED_SYSCALLS.clone[arch], l('clone')),
    jeq(CHECKED_SYSCALLS.personality[arch], l('personality')),
  );
  lines.push(ret(SECCOMP_RET.ALLOW));
  lines.push({ label: l('clone') }, ld(SECCOMP_DATA.arg0Low), { code: BPF.JSET_K, k: CLONE_NAMESPACE_FLAGS, jt: 'eperm', jf: 'allow' });
  lines.push({ label: l('personality') }, ld(SECCOMP_DATA.arg0Low), ...ALLOWED_PERSONALITIES.map((p) => jeq(p, 'allow')), ret(SECCOMP_RET.ERRNO | EPERM));
  return lines;
}

/** Resolves labels to the relative jumps of classic BPF (forward only, at most 255 instructions). */
function assemble(lines: Line[]): SockFilter[] {
  const at = new Map<string, number>();
  let n = 0;
  for (const line of lines) {
    if ('label' in line) at.set(line.label, n);
    else n++;
  }
  const out: SockFilter[] = [];
  const jump = (t: Target | undefined, from: number): number => {
    if (t === undefined || t === 0) return 0;
    const to = at.get(t);
    if (to === undefined) throw new Error(`seccomp: no label ${t}`);
    const off = to - from - 1;
    if (off < 0 || off > 255) throw new Error(`seccomp: jump to ${t} out of range (${off})`);
    return off;
  };
  for (const line of lines) {
    if ('label' in line) continue;
    out.push({ code: line.code, k: line.k >>> 0, jt: jump(line.jt, out.length), jf: jump(line.jf, out.length) });
  }
  return out;
}

/** The filter as instructions (see the module comment). */
export function seccompFilter(): SockFilter[] {
  return assemble([
    ld(SECCOMP_DATA.arch),
    jeq(AUDIT_ARCH.x86_64, 'x86_64:start'),
    jeq(AUDIT_ARCH.aarch64, 'aarch64:start', 'kill'),
    ...archBlock('x86_64'),
    ...archBlock('aarch64'),
    { label: 'allow' },
    ret(SECCOMP_RET.ALLOW),
    { label: 'eperm' },
    ret(SECCOMP_RET.ERRNO | EPERM),
    { label: 'enosys' },
    ret(SECCOMP_RET.ERRNO | ENOSYS),
    { label: 'kill' },
    ret(SECCOMP_RET.KILL_PROCESS),
  ]);
}

/** struct sock_filter[] as bwrap reads it: 8 bytes each (u16 code, u8 jt, u8 jf, u32 k), little-endian. */
export function encodeFilter(filter: readonly SockFilter[]): Buffer {
  const buf = Buffer.alloc(filter.length * 8);
  filter.forEach((f, i) => {
    buf.writeUInt16LE(f.code, i * 8);
    buf.writeUInt8(f.jt, i * 8 + 2);
    buf.writeUInt8(f.jf, i * 8 + 3);
    buf.writeUInt32LE(f.k, i * 8 + 4);
  });
  return buf;
}

/** The program bytes bwrap's `--seccomp FD` expects. */
export const seccompProgram = (): Buffer => encodeFilter(seccompFilter());
