//! `contactd keys create|list|revoke`: API keys in config.toml, edited in place (its
//! comments and layout are kept); a server running on the file reloads it. Only the SHA-256 of a key is written; the key
//! itself is printed once by `create` and is not recoverable.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::auth::{KeyConfig, Role, generate_key, hash_key};
use crate::config::{Config, Overrides};

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Configuration file holding the keys
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config.toml",
        global = true
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key: prints it once and writes its hash to the config file.
    Create {
        /// agent, manager or owner
        #[arg(long)]
        role: Role,
        /// A name to tell the key apart (unique) [default: key-<hash prefix>]
        #[arg(long)]
        name: Option<String>,
        /// Scope the key to the contacts this filter selects (e.g. "assignee = agent-12")
        #[arg(long)]
        filter: Option<String>,
        /// Let the key read and write only these contact fields (comma-separated)
        #[arg(long, value_delimiter = ',')]
        fields: Option<Vec<String>>,
    },
    /// List the configured keys (names, roles, hash prefixes; never the keys).
    List,
    /// Remove a key by name.
    Revoke { name: String },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &[Role::Agent, Role::Manager, Role::Owner]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

pub fn run(args: &KeysArgs) -> anyhow::Result<()> {
    let mut document = read(&args.config)?;
    match &args.action {
        KeysAction::List => {
            let keys = configured(&document)?;
            if keys.is_empty() {
                println!("no API keys in {}", args.config.display());
            }
            for key in keys {
                println!(
                    "{:<24} {:<8} sha256 {}…  {}",
                    key.name,
                    key.role.as_str(),
                    key.hash_prefix(),
                    key.created_at.as_deref().unwrap_or("")
                );
                if let Some(filter) = &key.filter {
                    println!("    filter: {filter}");
                }
                if let Some(fields) = &key.fields {
                    println!("    fields: {}", fields.join(", "));
                }
            }
        }
        KeysAction::Create {
            role,
            name,
            filter,
            fields,
        } => {
            let key = generate_key().map_err(anyhow::Error::msg)?;
            let sha256 = hash_key(&key);
            let name = name
                .clone()
                .unwrap_or_else(|| format!("key-{}", &sha256[..8]));
            if configured(&document)?.iter().any(|k| k.name == name) {
                bail!("a key named '{name}' exists: revoke it first or pick another name");
            }
            let mut entry = Table::new();
            entry["name"] = value(name.as_str());
            entry["role"] = value(role.as_str());
            entry["sha256"] = value(sha256);
            entry["created_at"] = value(chrono::Utc::now().to_rfc3339());
            if let Some(filter) = filter {
                entry["filter"] = value(filter.as_str());
            }
            if let Some(fields) = fields {
                entry["fields"] = value(
                    fields
                        .iter()
                        .map(String::as_str)
                        .collect::<toml_edit::Array>(),
                );
            }
            keys_table(&mut document)?.push(entry);
            write(&args.config, &document)?;
            println!("{key}");
            eprintln!(
                "created the {} key '{name}' in {} (only its hash is kept: store the key \
                 now; a server running on this file accepts it within a second)",
                role.as_str(),
                args.config.display()
            );
        }
        KeysAction::Revoke { name } => {
            let keys = keys_table(&mut document)?;
            let before = keys.len();
            keys.retain(|entry| entry.get("name").and_then(Item::as_str) != Some(name));
            if keys.len() == before {
                bail!("no key named '{name}' in {}", args.config.display());
            }
            write(&args.config, &document)?;
            eprintln!(
                "revoked '{name}' (a server running on this file refuses it within a second)"
            );
        }
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}

/// The keys as the server reads them (the whole file is loaded as the server would).
fn configured(document: &DocumentMut) -> anyhow::Result<Vec<KeyConfig>> {
    Ok(load(document)?.auth.keys)
}

/// The config the server would run with this text (without the environment).
fn load(document: &DocumentMut) -> anyhow::Result<Config> {
    let env: [(String, String); 0] = [];
    Config::from_sources(&document.to_string(), env, &Overrides::default())
        .context("the config file would not load")
}

/// `[[auth.keys]]`, created (or converted from an empty `keys = []`) when needed.
fn keys_table(document: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    let auth = document
        .entry("auth")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .context("auth in the config file is not a table")?;
    let keys = auth
        .entry("keys")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    if let Some(array) = keys.as_array() {
        if !array.is_empty() {
            bail!("auth.keys is an inline array: write it as [[auth.keys]] tables to edit it here");
        }
        // The comment above a shipped `keys = []` stays where it is (toml_edit keeps
        // the key's decor).
        *keys = Item::ArrayOfTables(ArrayOfTables::new());
    }
    keys.as_array_of_tables_mut()
        .context("auth.keys in the config file is not a list of keys")
}

/// Writes the file whole (via a sibling and a rename), after checking that the
/// server would still accept it.
fn write(path: &Path, document: &DocumentMut) -> anyhow::Result<()> {
    load(document).context("refusing to write the edited config")?;
    let text = document.to_string();
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, &text)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
