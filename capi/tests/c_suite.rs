//! Builds the C tests in tests/c/ (and the example driver in examples/c/) against
//! include/dma-mapping.h and libdma.a with the `cc` crate's compiler, as C11 with
//! `-Wall -Wextra -Werror` and once as C++, and runs them. Each program exits 0 when
//! every check passed; its output is shown on failure.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one test program may run (under qemu-user everything is slower).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("capi sits in the workspace").to_path_buf()
}

/// `libdma.a` (or `libdma.so`) from this very build: the test binary lives in
/// `<target>/<profile>/deps`, next to the libraries cargo built for it.
fn libdma_file(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let deps = exe.parent().expect("the test binary has a directory");
    for dir in [deps, deps.parent().unwrap_or(deps)] {
        let lib = dir.join(name);
        if lib.exists() {
            return lib;
        }
    }
    panic!("{name} not found next to {}", exe.display());
}

fn libdma() -> PathBuf {
    libdma_file("libdma.a")
}

fn out_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").join("c-tests");
    std::fs::create_dir_all(&dir).expect("the target directory is writable");
    dir
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lang {
    C,
    Cxx,
    CAsan,
}

fn compiler(lang: Lang) -> Command {
    let mut b = cc::Build::new();
    b.cargo_metadata(false)
        .target(env!("DMA_CAPI_TARGET"))
        .host(env!("DMA_CAPI_HOST"))
        .opt_level(1)
        .out_dir(out_dir())
        .cpp(lang == Lang::Cxx);
    let mut cmd = b.get_compiler().to_command();
    match lang {
        Lang::C | Lang::CAsan => cmd.arg("-std=c11"),
        Lang::Cxx => cmd.arg("-std=c++17").arg("-x").arg("c++"),
    };
    cmd.args(["-Wall", "-Wextra", "-Werror", "-g"]);
    if lang == Lang::CAsan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    cmd
}

/// Compiles `src` (relative to the workspace root) and returns the executable.
fn build(src: &str, lang: Lang) -> PathBuf {
    let root = root();
    let stem = Path::new(src).file_stem().and_then(|s| s.to_str()).expect("a file name");
    let exe = out_dir().join(format!("{stem}-{lang:?}").to_lowercase());
    let mut cmd = compiler(lang);
    cmd.arg("-I").arg(root.join("include")).arg("-I").arg(root.join("tests/c")).arg(root.join(src));
    if lang == Lang::Cxx {
        cmd.arg("-x").arg("none");
    }
    cmd.arg(libdma()).args(["-lpthread", "-ldl", "-lm", "-lrt"]).arg("-o").arg(&exe);
    let out = cmd.output().expect("the C compiler runs");
    assert!(
        out.status.success(),
        "compiling {src} as {lang:?} failed:\n{} {:?}\n{}{}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A command that runs `exe`, a program built for the target: directly, or, when
/// `DMA_TEST_RUNNER` is set (an emulated test: no binfmt_misc on the host), through that
/// runner, split on whitespace (`qemu-arm -L /usr/arm-linux-gnueabihf exe ...`).
fn target_command(exe: &Path) -> Command {
    let runner = std::env::var("DMA_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(exe);
            cmd
        }
        None => Command::new(exe),
    }
}

/// Runs `cmd` to completion, capturing its output; kills it and fails after `RUN_TIMEOUT`.
fn output_with_timeout(mut cmd: Command, what: &Path) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {} ({cmd:?}): {e}", what.display()));
    // Drain the pipes on threads so a chatty program cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the test program") {
            break status;
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let (o, e) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
            panic!(
                "{} timed out after {} s and was killed:\n{}{}",
                what.display(),
                RUN_TIMEOUT.as_secs(),
                String::from_utf8_lossy(&o),
                String::from_utf8_lossy(&e)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

fn run(exe: &Path, opts: &str) {
    let mut cmd = target_command(exe);
    cmd.env("DMA_OPTS", opts);
    // Cargo puts target/<profile> on LD_LIBRARY_PATH, which beats the program's RUNPATH and
    // may hold a libdma.so from another build: the shared-library test must load its own.
    cmd.env_remove("LD_LIBRARY_PATH");
    // LeakSanitizer cannot run under ptrace-restricted sandboxes; leaks are not the point.
    cmd.env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1");
    let out = output_with_timeout(cmd, exe);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed ({}):\n{text}", exe.display(), out.status);
    assert!(!text.contains("AddressSanitizer"), "{} has AddressSanitizer findings:\n{text}", exe.display());
}

/// Builds and runs `tests/c/{name}.c` with `opts` as its `DMA_OPTS`.
fn c_test(name: &str, lang: Lang, opts: &str) {
    let exe = build(&format!("tests/c/{name}.c"), lang);
    run(&exe, opts);
}

/// One test per program and language: `name` runs with empty `DMA_OPTS`,
/// `name = "opts"` with those options.
macro_rules! c_tests {
    ($($name:ident $(= $opts:literal)?),* $(,)?) => {
        mod c {
            $(#[test] fn $name() { super::c_test(stringify!($name), super::Lang::C, concat!("" $(, $opts)?)) })*
        }
        mod cxx {
            $(#[test] fn $name() { super::c_test(stringify!($name), super::Lang::Cxx, concat!("" $(, $opts)?)) })*
        }
        // ASan builds cannot run under qemu-user on these targets: GCC 12's riscv64 libasan
        // assumes addresses below 2^38 (QEMU hands out higher ones), and on armv7 QEMU 7.2
        // puts the stack at 0x40000000, which breaks ASan's AddrIsInMem. x86_64 and aarch64
        // keep them.
        #[cfg(not(any(target_arch = "riscv64", target_arch = "arm")))]
        mod asan {
            $(#[test] fn $name() { super::c_test(stringify!($name), super::Lang::CAsan, concat!("" $(, $opts)?)) })*
        }
    };
}

c_tests!(
    alloc,
    sync,
    bounce,
    sg,
    bad_input,
    mmap,
    system,
    debug = "dma_debug=1",
    cma = "cma=64M",
    iommu,
    iova = "dma_debug=1",
    noncontiguous,
    pool,
    devres = "dma_debug=1",
    guard = "dma_debug=guard",
    phys,
);

#[test]
fn example_driver_runs() {
    let exe = build("examples/c/ring_driver.c", Lang::C);
    run(&exe, "");
}

/// The VFIO example driver (run in the QEMU guest by tests/qemu/run.sh) builds here too,
/// and without the device (no /dev/vfio on this machine) fails cleanly: the library's
/// message, a FAIL line, exit status 1, no crash and nothing for AddressSanitizer.
#[test]
fn vfio_example_builds_and_fails_cleanly_without_the_device() {
    // No ASan build under qemu-user on riscv64 and armv7 (see `mod asan`).
    let langs: &[Lang] =
        if cfg!(any(target_arch = "riscv64", target_arch = "arm")) { &[Lang::C] } else { &[Lang::C, Lang::CAsan] };
    for &lang in langs {
        let exe = build("examples/c/edu_vfio.c", lang);
        let mut cmd = target_command(&exe);
        cmd.arg("ffff:ff:1f.7")
            .env("DMA_OPTS", "dma_debug=1")
            .env_remove("LD_LIBRARY_PATH")
            .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1");
        let out = output_with_timeout(cmd, &exe);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let text = format!("{stdout}{stderr}");
        assert_eq!(out.status.code(), Some(1), "{} ({}):\n{text}", exe.display(), out.status);
        assert!(stdout.contains("RESULT c_vfio_system PASS"), "{text}");
        assert!(stdout.contains("RESULT c_vfio_device FAIL"), "{text}");
        let why = if cfg!(all(target_os = "linux", target_pointer_width = "64")) {
            "ffff:ff:1f.7: no such PCI device"
        } else {
            "ffff:ff:1f.7: VFIO devices need 64-bit Linux"
        };
        assert!(stderr.contains(&format!("dma: dma_device_create_vfio: {why}")), "{text}");
        assert!(!text.contains("AddressSanitizer"), "{text}");
    }
}

/// `scripts/install.sh` into a fresh prefix (with this build's libraries), then the example
/// driver is built as its users would: the installed header, flags from `pkg-config`, once
/// against `libdma.so` and once fully static.
#[test]
fn example_driver_builds_from_the_installed_library_with_pkg_config() {
    let prefix = out_dir().join("install-prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let lib_dir = libdma().parent().expect("a directory").to_path_buf();
    let out = Command::new(root().join("scripts/install.sh"))
        .arg("--from")
        .arg(&lib_dir)
        .arg(&prefix)
        .output()
        .expect("scripts/install.sh runs");
    assert!(out.status.success(), "install.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    for f in ["include/dma-mapping.h", "include/dma-kernel-compat.h", "lib/libdma.a", "lib/libdma.so"] {
        assert!(prefix.join(f).is_file(), "{f} is not installed");
    }
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/dma.pc")).expect("dma.pc is installed");
    assert!(pc.contains("Libs.private: -lpthread -ldl -lm -lrt"), "dma.pc:\n{pc}");

    let pkg_config = |args: &[&str]| -> Vec<String> {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("dma")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .output()
            .expect("pkg-config is installed (scripts/test.sh installs it)");
        assert!(out.status.success(), "pkg-config {args:?} dma failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("flags are UTF-8").split_whitespace().map(str::to_owned).collect()
    };
    let src = root().join("examples/c/ring_driver.c");
    for (name, static_link) in [("ring_driver-installed", false), ("ring_driver-installed-static", true)] {
        let exe = out_dir().join(name);
        let mut cmd = compiler(Lang::C);
        if static_link {
            cmd.arg("-static");
        }
        cmd.arg(&src).args(pkg_config(&["--cflags"]));
        cmd.args(pkg_config(if static_link { &["--libs", "--static"] } else { &["--libs"] }));
        cmd.arg("-o").arg(&exe);
        let out = cmd.output().expect("the C compiler runs");
        assert!(out.status.success(), "building {name} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let mut cmd = target_command(&exe);
        cmd.env("DMA_OPTS", "").env("LD_LIBRARY_PATH", prefix.join("lib"));
        let out = output_with_timeout(cmd, &exe);
        assert!(
            out.status.success(),
            "{name} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn shared_library_links_and_runs() {
    let so = libdma_file("libdma.so");
    let dir = so.parent().expect("a directory");
    let exe = out_dir().join("sync-shared");
    let mut cmd = compiler(Lang::C);
    cmd.arg("-I").arg(root().join("include")).arg("-I").arg(root().join("tests/c")).arg(root().join("tests/c/sync.c"));
    cmd.arg("-L").arg(dir).arg(format!("-Wl,-rpath,{}", dir.display())).arg("-ldma").arg("-o").arg(&exe);
    let out = cmd.output().expect("the C compiler runs");
    assert!(out.status.success(), "linking against libdma.so failed:\n{}", String::from_utf8_lossy(&out.stderr));
    run(&exe, "");
}
