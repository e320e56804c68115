import { seccompProgram } from '../../src/compute/process/seccomp';

/**
 * The filter is checked from its bytes: decoded as the kernel reads struct sock_filter, then run by a
 * small classic-BPF interpreter over seccomp_data, so what is tested is what bwrap loads.
 */
interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const decode = (buf: Buffer): Insn[] => {
  expect(buf.length % 8).toBe(0);
  return Array.from({ length: buf.length / 8 }, (_, i) => ({
    code: buf.readUInt16LE(i * 8),
    jt: buf.readUInt8(i * 8 + 2),
    jf: buf.readUInt8(i * 8 + 3),
    k: buf.readUInt32LE(i * 8 + 4),
  }));
};

const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_AARCH64 = 0xc00000b7;
const AUDIT_ARCH_I386 = 0x40000003;
const ALLOW = 0x7fff0000;
const EPERM = 0x00050000 | 1;
const ENOSYS = 0x00050000 | 38;
const KILL_PROCESS = 0x80000000;

/** struct seccomp_data, little-endian: nr, arch, instruction_pointer, args[6] */
function seccompData(arch: number, nr: number, args: bigint[] = []): Buffer {
  const b = Buffer.alloc(64);
  b.writeInt32LE(nr, 0);
  b.writeUInt32LE(arch, 4);
  args.forEach((a, i) => b.writeBigUInt64LE(a, 16 + i * 8));
  return b;
}

/** Runs the program the way the kernel does (only the opcodes a seccomp filter may use); throws on anything else. */
function run(prog: Insn[], data: Buffer): number {
  let a = 0;
  for (let pc = 0, steps = 0; pc < prog.length && steps < 10_000; steps++) {
    const { code, jt, jf, k } = prog[pc] as Insn;
    switch (code) {
      case 0x20: // BPF_LD | BPF_W | BPF_ABS
        if (k % 4 !== 0 || k + 4 > 64) throw new Error(`bad load at ${pc}`);
        a = data.readUInt32LE(k);
        pc++;
        break;
      case 0x15: // BPF_JMP | BPF_JEQ | BPF_K
        pc += 1 + (a === k ? jt : jf);
        break;
      case 0x35: // BPF_JMP | BPF_JGE | BPF_K
        pc += 1 + (a >= k ? jt : jf);
        break;
      case 0x45: // BPF_JMP | BPF_JSET | BPF_K
        pc += 1 + ((a & k) !== 0 ? jt : jf);
        break;
      case 0x06: // BPF_RET | BPF_K
        return k;
      default:
        throw new Error(`unexpected opcode ${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('fell off the end of the program');
}

/** The refused calls with their numbers, from the kernel's tables (x86_64: syscall_64.tbl; aarch64: asm-generic/unistd.h). */
const DENIED: [string, number | null, number | null][] = [
  ['mount', 165, 40],
  ['umount2', 166, 39],
  ['pivot_root', 155, 41],
  ['chroot', 161, 51],
  ['open_tree', 428, 428],
  ['move_mount', 429, 429],
  ['fsopen', 430, 430],
  ['fsconfig', 431, 431],
  ['fsmount', 432, 432],
  ['fspick', 433, 433],
  ['mount_setattr', 442, 442],
  ['open_tree_attr', 467, 467],
  ['unshare', 272, 97],
  ['setns', 308, 268],
  ['ptrace', 101, 117],
  ['process_vm_readv', 310, 270],
  ['process_vm_writev', 311, 271],
  ['kcmp', 312, 272],
  ['pidfd_getfd', 438, 438],
  ['init_module', 175, 105],
  ['finit_module', 313, 273],
  ['delete_module', 176, 106],
  ['create_module', 174, null],
  ['get_kernel_syms', 177, null],
  ['query_module', 178, null],
  ['kexec_load', 246, 104],
  ['kexec_file_load', 320, 294],
  ['bpf', 321, 280],
  ['perf_event_open', 298, 241],
  ['userfaultfd', 323, 282],
  ['io_uring_setup', 425, 425],
  ['io_uring_enter', 426, 426],
  ['io_uring_register', 427, 427],
  ['syslog', 103, 116],
  ['lookup_dcookie', 212, 18],
  ['add_key', 248, 217],
  ['request_key', 249, 218],
  ['keyctl', 250, 219],
  ['name_to_handle_at', 303, 264],
  ['open_by_handle_at', 304, 265],
  ['fanotify_init', 300, 262],
  ['reboot', 169, 142],
  ['swapon', 167, 224],
  ['swapoff', 168, 225],
  ['settimeofday', 164, 170],
  ['clock_settime', 227, 112],
  ['adjtimex', 159, 171],
  ['clock_adjtime', 305, 266],
  ['acct', 163, 89],
  ['quotactl', 179, 60],
  ['quotactl_fd', 443, 443],
  ['vhangup', 153, 58],
  ['nfsservctl', 180, 42],
  ['iopl', 172, null],
  ['ioperm', 173, null],
  ['modify_ldt', 154, null],
  ['uselib', 134, null],
  ['ustat', 136, null],
  ['sysfs', 139, null],
  ['_sysctl', 156, null],
];

/** What every program needs, and must keep: [name, x86_64, aarch64]. */
const ALLOWED: [string, number, number][] = [
  ['read', 0, 63],
  ['write', 1, 64],
  ['openat', 257, 56],
  ['close', 3, 57],
  ['mmap', 9, 222],
  ['mprotect', 10, 226],
  ['brk', 12, 214],
  ['rt_sigaction', 13, 134],
  ['ioctl', 16, 29],
  ['futex', 202, 98],
  ['execve', 59, 221],
  ['wait4', 61, 260],
  ['exit_group', 231, 94],
  ['getpid', 39, 172],
  ['socket', 41, 198],
  ['connect', 42, 203],
  ['epoll_wait', 232, 22],
  ['epoll_pwait', 281, 22],
  ['prctl', 157, 167],
  ['seccomp', 317, 277],
  ['statx', 332, 291],
  ['getrandom', 318, 278],
  ['rseq', 334, 293],
  ['vfork', 58, 220], // aarch64 has no vfork: 220 is clone (flags 0 below), allowed
];

const CLONE = { x86_64: 56, aarch64: 220 };
const CLONE3 = 435;
const PERSONALITY = { x86_64: 135, aarch64: 92 };
const ARCHES = [
  ['x86_64', AUDIT_ARCH_X86_64],
  ['aarch64', AUDIT_ARCH_AARCH64],
] as const;

const prog = decode(seccompProgram());

describe('seccomp filter', () => {
  test('when decoded, then it is a well-formed classic-BPF program bwrap accepts: at most 4096 instructions, forward jumps inside it', () => {
    expect(prog.length).toBeGreaterThan(0);
    expect(prog.length).toBeLessThanOrEqual(4096);
    prog.forEach((insn, pc) => {
      if ((insn.code & 0x07) === 0x05) {
        expect(pc + 1 + insn.jt).toBeLessThan(prog.length);
        expect(pc + 1 + insn.jf).toBeLessThan(prog.length);
      }
    });
    expect(prog[prog.length - 1]?.code).toBe(0x06);
  });

  test.each(DENIED.filter(([, x86]) => x86 !== null).map(([name, x86]) => [name, x86 as number]))(
    'when an x86_64 process calls %s (%i), then it gets EPERM',
    (_name, nr) => {
      expect(run(prog, seccompData(AUDIT_ARCH_X86_64, nr))).toBe(EPERM);
    },
  );

  test.each(DENIED.filter(([, , arm]) => arm !== null).map(([name, , arm]) => [name, arm as number]))(
    'when an aarch64 process calls %s (%i), then it gets EPERM',
    (_name, nr) => {
      expect(run(prog, seccompData(AUDIT_ARCH_AARCH64, nr))).toBe(EPERM);
    },
  );

  test.each(ALLOWED)('when a process calls %s, then it is allowed on both architectures', (_name, x86, arm) => {
    expect(run(prog, seccompData(AUDIT_ARCH_X86_64, x86))).toBe(ALLOW);
    expect(run(prog, seccompData(AUDIT_ARCH_AARCH64, arm))).toBe(ALLOW);
  });

  test('when every number up to 500 is tried, then exactly the listed ones are refused per architecture', () => {
    for (const [arch, audit] of ARCHES) {
      const col = arch === 'x86_64' ? 1 : 2;
      const denied = new Set(DENIED.map((d) => d[col]).filter((n): n is number => n !== null));
      for (let nr = 0; nr < 500; nr++) {
        const want = denied.has(nr) ? EPERM : nr === CLONE3 ? ENOSYS : ALLOW;
        if (nr === CLONE[arch] || nr === PERSONALITY[arch]) continue; // argument checks, below
        expect([arch, nr, run(prog, seccompData(audit, nr))]).toEqual([arch, nr, want]);
      }
    }
  });

  test('when an x86_64 process uses the x32 ABI (numbers from 0x40000000), then every call is refused with ENOSYS', () => {
    for (const nr of [0x40000000, 0x40000000 + 39, 0x40000000 + 165, 0x40000000 + 512, 0x7fffffff]) {
      expect(run(prog, seccompData(AUDIT_ARCH_X86_64, nr))).toBe(ENOSYS);
    }
    // numbers that read as negative ints are at least as large unsigned: refused too
    expect(run(prog, seccompData(AUDIT_ARCH_X86_64, -1))).toBe(ENOSYS);
  });

  test('when a call comes from another ABI (i386 on x86_64, or an unknown arch), then the process is killed before any table is read', () => {
    for (const arch of [AUDIT_ARCH_I386, 0, 0xc00000f3 /* riscv64 */, 0x80000016 /* s390x */]) {
      for (const nr of [0, 1, 26 /* i386 ptrace */, 21 /* i386 mount */, 165]) expect(run(prog, seccompData(arch, nr))).toBe(KILL_PROCESS);
    }
  });

  test.each([
    ['a plain fork (SIGCHLD)', 0x11n, ALLOW],
    ['a thread (CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID)', 0x3d0f00n, ALLOW],
    ['vfork (CLONE_VM|CLONE_VFORK|SIGCHLD)', 0x4111n, ALLOW],
    ['CLONE_NEWUSER', 0x10000000n, EPERM],
    ['CLONE_NEWNS', 0x00020000n, EPERM],
    ['CLONE_NEWNET', 0x40000000n, EPERM],
    ['CLONE_NEWPID', 0x20000000n, EPERM],
    ['CLONE_NEWIPC', 0x08000000n, EPERM],
    ['CLONE_NEWUTS', 0x04000000n, EPERM],
    ['CLONE_NEWCGROUP', 0x02000000n, EPERM],
    ['CLONE_NEWUSER with high bits set (the kernel reads the low 32)', 0xffffffff10000011n, EPERM],
  ])('when clone is called with %s, then the answer is right on both architectures', (_name, flags, want) => {
    for (const [arch, audit] of ARCHES) expect(run(prog, seccompData(audit, CLONE[arch], [flags]))).toBe(want);
  });

  test('when clone3 is called, then it answers ENOSYS (the C library falls back to clone, whose flags the filter reads)', () => {
    for (const [, audit] of ARCHES) expect(run(prog, seccompData(audit, CLONE3, [0n, 88n]))).toBe(ENOSYS);
  });

  test.each([
    [0x0n, ALLOW],
    [0x8n, ALLOW],
    [0x20000n, ALLOW],
    [0x20008n, ALLOW],
    [0xffffffffn, ALLOW],
    [0x0040000n, EPERM], // ADDR_NO_RANDOMIZE
    [0x0400000n, EPERM], // READ_IMPLIES_EXEC
    [0x0040008n, EPERM],
  ])('when personality(%s) is asked for, then it is allowed only when it does not weaken the process', (persona, want) => {
    for (const [arch, audit] of ARCHES) expect(run(prog, seccompData(audit, PERSONALITY[arch], [persona]))).toBe(want);
  });
});
