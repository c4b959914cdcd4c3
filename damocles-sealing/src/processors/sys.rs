//! The system calls of external processors that have no safe wrapper in the standard
//! library: the two a child binds itself with, the parent-death signal the worker gives
//! each child, and the stop and continue signals of WindowPoSt's priority. The only
//! `unsafe` code of the workspace.
#![allow(unsafe_code)]

use std::io;

use super::CpuSet;

/// Restricts the calling thread, and every thread it starts afterwards, to `cpus`
/// (`sched_setaffinity(2)` on thread 0 of a process that has not started others yet
/// binds the whole process).
pub(super) fn set_affinity(cpus: &CpuSet) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.cpus() {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond what sched_setaffinity takes"),
            ));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `node` the preferred NUMA node of this thread's (and later threads') memory
/// (`set_mempolicy(2)` with `MPOL_PREFERRED`); memory comes from other nodes when it is
/// full.
pub(super) fn prefer_numa_node(node: u32) -> io::Result<()> {
    const MPOL_PREFERRED: libc::c_long = 1;
    let bits = u64::BITS as usize;
    let node = node as usize;
    let mut mask = vec![0u64; node / bits + 1];
    mask[node / bits] |= 1 << (node % bits);
    // The kernel reads `maxnode - 1` bits of the mask.
    let maxnode = (mask.len() * bits + 1) as libc::c_ulong;
    // SAFETY: the mask outlives the call and holds at least `maxnode - 1` bits.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            MPOL_PREFERRED,
            mask.as_ptr(),
            maxnode,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `command`'s process get SIGKILL when the worker thread that started it dies
/// (`prctl(PR_SET_PDEATHSIG)`): a worker that is killed, or exits without waiting, leaves
/// no child proving on behalf of nobody (a program that ignores its closed stdin included).
pub(super) fn die_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // async-signal-safe system call.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// Sends `signal` (SIGSTOP, SIGCONT) to the process group led by `pgid`: a child started
/// as its own group's leader, with whatever it started itself.
pub(super) fn signal_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid =
        libc::pid_t::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    if unsafe { libc::kill(-pgid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
