#!/usr/bin/env node
// Produce the committed NocoBase fixtures (pure data, read from PostgreSQL's
// catalogs) for tests/fixtures/nocobase/<version>/:
//   tables.csv   every table: columns, rows right after install / after the
//                builder changes, presence in the shared catalog CSV, what the
//                running NocoBase says about it (collection metadata), id strategy
//   schema.json  columns (name, SQL type, nullable, default), PK, unique
//                constraints, indexes, foreign keys, owned sequences
//   samples.json a few realistic rows of the configuration tables (secrets redacted)
//   natural-keys.json  (only with --other-db) which primary-key values / natural
//                keys coincide between two independently installed apps
//
// Usage (run with the pg module shipped by the NocoBase install):
//   NODE_PATH=$APP_DIR/node_modules node hack/nocobase/dump-fixtures.cjs \
//     --pg postgres://postgres@127.0.0.1:55432 --installed-db nb1_postinstall --db nb1 \
//     [--started-db nb3]  (a fresh install that was started once and stopped) \
//     [--upgraded-db nb4] (a fresh install after `nocobase upgrade --skip-code-update`) \
//     [--other-db nb2] --shared-csv ../shared/data/nocobase-builtin-tables.csv \
//     --meta /tmp/meta.json --out tests/fixtures/nocobase/2.2.15
const fs = require('fs');
const path = require('path');
const { Client } = require('pg');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const need = (k) => {
  if (!args[k]) throw new Error(`--${k} is required`);
  return args[k];
};

const SECRET_COLUMNS = /^(password|token|accessToken|refreshToken|secret|clientSecret|apiKey|jti|signInTime)$/i;
const redact = (table, row) => {
  const out = {};
  for (const [k, v] of Object.entries(row)) {
    if (v !== null && v !== undefined && SECRET_COLUMNS.test(k)) out[k] = 'REDACTED';
    else if (table === 'issuedTokens' && k === 'id') out[k] = 'REDACTED';
    else out[k] = v;
  }
  return out;
};

async function connect(db) {
  const u = new URL(need('pg'));
  u.pathname = `/${db}`;
  const c = new Client({ connectionString: u.toString() });
  await c.connect();
  return c;
}

async function tableNames(c) {
  const r = await c.query(
    `select table_name from information_schema.tables where table_schema='public' and table_type='BASE TABLE' order by 1`,
  );
  return r.rows.map((x) => x.table_name);
}
async function count(c, t) {
  const r = await c.query(`select count(*)::int as n from "${t}"`);
  return r.rows[0].n;
}

async function schemaOf(c, t) {
  const cols = (
    await c.query(
      `select column_name, data_type, udt_name, character_maximum_length, numeric_precision, numeric_scale,
              is_nullable, column_default, ordinal_position
         from information_schema.columns where table_schema='public' and table_name=$1 order by ordinal_position`,
      [t],
    )
  ).rows;
  const fmt = (
    await c.query(
      `select a.attname, format_type(a.atttypid, a.atttypmod) as t from pg_attribute a
        where a.attrelid = ('public."' || $1 || '"')::regclass and a.attnum > 0 and not a.attisdropped`,
      [t],
    )
  ).rows.reduce((m, r) => ((m[r.attname] = r.t), m), {});
  const cons = (
    await c.query(
      `select con.conname, con.contype,
              array(select a.attname::text from unnest(con.conkey) with ordinality k(n, o)
                    join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.n order by k.o) as cols,
              case when con.contype = 'f' then con.confrelid::regclass::text end as ref_table,
              case when con.contype = 'f' then array(select a.attname::text from unnest(con.confkey) with ordinality k(n, o)
                    join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.n order by k.o) end as ref_cols,
              pg_get_constraintdef(con.oid) as def
         from pg_constraint con where con.conrelid = ('public."' || $1 || '"')::regclass order by con.conname`,
      [t],
    )
  ).rows;
  const idx = (
    await c.query(
      `select i.relname as name, ix.indisunique as unique, ix.indisprimary as primary,
              array(select pg_get_indexdef(ix.indexrelid, k + 1, true) from generate_subscripts(ix.indkey, 1) k order by k) as cols,
              pg_get_indexdef(ix.indexrelid) as def
         from pg_index ix join pg_class i on i.oid = ix.indexrelid
        where ix.indrelid = ('public."' || $1 || '"')::regclass order by i.relname`,
      [t],
    )
  ).rows;
  const seqs = (
    await c.query(
      `select s.relname as seq, a.attname as col from pg_depend d
         join pg_class s on s.oid = d.objid and s.relkind = 'S'
         join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
        where d.refobjid = ('public."' || $1 || '"')::regclass and d.deptype in ('a','i')`,
      [t],
    )
  ).rows;
  const pk = cons.find((x) => x.contype === 'p');
  return {
    columns: cols.map((x) => ({
      name: x.column_name,
      type: fmt[x.column_name] || x.data_type,
      nullable: x.is_nullable === 'YES',
      default: x.column_default,
    })),
    primary_key: pk ? pk.cols : [],
    unique_constraints: cons.filter((x) => x.contype === 'u').map((x) => ({ name: x.conname, columns: x.cols })),
    foreign_keys: cons
      .filter((x) => x.contype === 'f')
      .map((x) => ({ name: x.conname, columns: x.cols, ref_table: x.ref_table, ref_columns: x.ref_cols })),
    check_constraints: cons.filter((x) => x.contype === 'c').map((x) => ({ name: x.conname, definition: x.def })),
    indexes: idx.map((x) => ({
      name: x.name,
      unique: x.unique,
      primary: x.primary,
      columns: x.cols.map((c) => (/^"[^"]+"$/.test(c) ? c.slice(1, -1) : c)),
      definition: x.def,
    })),
    sequences: seqs.map((x) => ({ name: x.seq, column: x.col })),
  };
}

function idStrategy(s) {
  if (!s.primary_key.length) return 'none';
  if (s.primary_key.length > 1) return `composite(${s.primary_key.join(',')})`;
  const col = s.columns.find((x) => x.name === s.primary_key[0]);
  const name = s.primary_key[0];
  if (col.default && /nextval/.test(col.default)) return `serial(${name})`;
  if (/^(bigint|integer)$/.test(col.type)) return `app-generated-bigint(${name})`; // snowflakeId or supplied
  if (/uuid/.test(col.type)) return `uuid(${name})`;
  return `natural-${col.type.replace(/\(.*/, '')}(${name})`;
}

function readCsv(file) {
  const [head, ...lines] = fs.readFileSync(file, 'utf8').trim().split(/\r?\n/);
  const cols = head.split(',');
  return lines.map((l) => {
    const v = l.split(',');
    return Object.fromEntries(cols.map((c, i) => [c, v[i]]));
  });
}
const csvCell = (v) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

const SAMPLES = {
  collections: `select * from collections order by sort`,
  fields: `select * from fields where "collectionName" in ('customers','orders') or ("collectionName"='users' and name in ('roles','nickname')) order by "collectionName", sort`,
  uiSchemas: `select * from "uiSchemas" where "x-uid" in (select descendant from "uiSchemaTreePath" where ancestor in (select "schemaUid" from "desktopRoutes" where type='page')) or "x-uid" = 'nocobase-admin-profile-edit-form' order by "x-uid" limit 12`,
  uiSchemaTreePath: `select * from "uiSchemaTreePath" where ancestor in (select "schemaUid" from "desktopRoutes" where type='page') order by depth, descendant limit 16`,
  desktopRoutes: `select * from "desktopRoutes" order by id`,
  rolesDesktopRoutes: `select * from "rolesDesktopRoutes" where "roleName"='sales'`,
  flowModels: `select * from "flowModels" order by uid limit 6`,
  flowModelTreePath: `select * from "flowModelTreePath" order by depth, ancestor limit 10`,
  roles: `select * from roles order by name`,
  rolesUsers: `select * from "rolesUsers" order by "roleName"`,
  rolesResources: `select * from "rolesResources" order by id limit 5`,
  rolesResourcesActions: `select * from "rolesResourcesActions" order by id limit 5`,
  dataSourcesRoles: `select * from "dataSourcesRoles" order by "roleName"`,
  dataSourcesRolesResources: `select * from "dataSourcesRolesResources" order by id`,
  dataSourcesRolesResourcesActions: `select * from "dataSourcesRolesResourcesActions" order by id`,
  dataSourcesRolesResourcesScopes: `select * from "dataSourcesRolesResourcesScopes" order by id limit 5`,
  workflows: `select * from workflows order by id`,
  flow_nodes: `select * from flow_nodes order by id`,
  systemSettings: `select * from "systemSettings"`,
  environmentVariables: `select * from "environmentVariables" order by name`,
  applicationPlugins: `select * from "applicationPlugins" order by id limit 6`,
  migrations: `select * from migrations order by name limit 6`,
  applicationVersion: `select * from "applicationVersion"`,
  dataSources: `select * from "dataSources"`,
  users: `select * from users order by id`,
  customers: `select * from customers`,
  orders: `select * from orders`,
  main_desktopRoutes_path: `select * from "main_desktopRoutes_path" order by "nodePk" limit 6`,
};

async function main() {
  const out = need('out');
  fs.mkdirSync(out, { recursive: true });
  const installed = await connect(need('installed-db'));
  const changed = await connect(need('db'));
  const shared = readCsv(need('shared-csv'));
  const sharedBy = Object.fromEntries(shared.map((r) => [r.table, r]));
  const meta = args.meta ? JSON.parse(fs.readFileSync(args.meta, 'utf8')) : [];
  const metaByTable = {};
  for (const m of meta) if (m.tableName && !metaByTable[m.tableName]) metaByTable[m.tableName] = m;

  const started = args['started-db'] ? await connect(args['started-db']) : null;
  const t0 = await tableNames(installed);
  const tS = started ? await tableNames(started) : [];
  const t1 = await tableNames(changed);
  const all = [...new Set([...t0, ...t1])].sort();

  const schema = {};
  const rows = [];
  for (const t of all) {
    const s = await schemaOf(t1.includes(t) ? changed : installed, t);
    schema[t] = s;
    const m = metaByTable[t];
    const sh = sharedBy[t];
    rows.push([
      t,
      s.columns.length,
      t0.includes(t) ? await count(installed, t) : '',
      tS.includes(t) ? await count(started, t) : '',
      t1.includes(t) ? await count(changed, t) : '',
      t0.includes(t) ? 'install' : 'builder-change',
      sh ? 'yes' : 'no',
      sh ? sh.data_category : '',
      sh ? sh.default_migration_rule : '',
      m ? m.name : '',
      m ? m.origin || '' : '',
      m ? m.dataCategory || '' : '',
      m && m.migrationRules ? m.migrationRules.join('|') : '',
      idStrategy(s),
    ]);
  }
  const header = [
    'table', 'columns', 'rows_after_install', 'rows_after_first_start', 'rows_after_changes', 'created_by', 'in_shared_csv',
    'shared_data_category', 'shared_default_migration_rule', 'nocobase_collection', 'nocobase_origin',
    'nocobase_data_category', 'nocobase_migration_rules', 'id_strategy',
  ];
  fs.writeFileSync(path.join(out, 'tables.csv'), [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n');

  const notCreated = shared.filter((r) => !all.includes(r.table)).map((r) => ({ table: r.table, group: r.group }));
  const seqs = (await changed.query(`select sequencename, last_value from pg_sequences where schemaname='public' order by 1`)).rows;
  fs.writeFileSync(
    path.join(out, 'schema.json'),
    JSON.stringify(
      {
        source: 'information_schema + pg_catalog of a PostgreSQL 15 database after `nocobase install` and the builder changes of hack/nocobase/builder-demo.mjs',
        tables: schema,
        sequences: seqs.map((s) => s.sequencename),
        shared_csv_tables_not_created: notCreated,
      },
      null,
      1,
    ) + '\n',
  );

  const samples = {};
  for (const [name, sql] of Object.entries(SAMPLES)) {
    try {
      const r = await changed.query(sql);
      samples[name] = r.rows.map((row) => redact(name, row));
    } catch (e) {
      samples[name] = { error: e.message };
    }
  }
  if (args['upgraded-db']) {
    // `nocobase install` records no migrations; an `upgrade` (even to the same
    // version) runs and records them, and rewrites applicationVersion.
    const up = await connect(args['upgraded-db']);
    samples.migrations_after_upgrade = (await up.query(`select * from migrations order by name limit 8`)).rows;
    samples.applicationVersion_after_upgrade = (await up.query(`select * from "applicationVersion"`)).rows;
    samples._migrations_after_upgrade_count = (await up.query(`select count(*)::int n from migrations`)).rows[0].n;
    await up.end();
  }
  samples._counts = {};
  for (const name of Object.keys(SAMPLES)) {
    if (t1.includes(name)) samples._counts[name] = await count(changed, name);
  }
  fs.writeFileSync(path.join(out, 'samples.json'), JSON.stringify(samples, null, 1) + '\n');

  if (args['other-db']) {
    const other = await connect(args['other-db']);
    const cmp = {};
    const KEYS = {
      collections: ['name'], fields: ['collectionName', 'name'], uiSchemas: ['x-uid'], desktopRoutes: ['id'],
      roles: ['name'], rolesResources: ['roleName', 'name'], dataSourcesRolesResources: ['roleName', 'dataSourceKey', 'name'],
      workflows: ['key'], flow_nodes: ['key'], systemSettings: ['id'], environmentVariables: ['name'],
      applicationPlugins: ['name'], migrations: ['name'], applicationVersion: ['value'], flowModels: ['uid'],
      authenticators: ['name'], storages: ['name'], dataSources: ['key'], users: ['id'], collectionCategories: ['id'],
      uiSchemaTreePath: ['ancestor', 'descendant'], flowModelTreePath: ['ancestor', 'descendant'],
    };
    for (const t of all) {
      if (!t1.includes(t)) continue;
      const s = schema[t];
      const keysets = { primary_key: s.primary_key };
      if (KEYS[t]) keysets.natural_key = KEYS[t];
      const entry = { rows_a: await count(changed, t), rows_b: await count(other, t).catch(() => null) };
      if (!entry.rows_a && !entry.rows_b) continue;
      for (const [kind, cols] of Object.entries(keysets)) {
        if (!cols.length) continue;
        const q = `select ${cols.map((c) => `"${c}"::text`).join(` || '\u0001' || `)} as k from "${t}"`;
        const a = new Set((await changed.query(q)).rows.map((r) => r.k));
        const b = new Set((await other.query(q).catch(() => ({ rows: [] }))).rows.map((r) => r.k));
        const common = [...a].filter((k) => b.has(k)).length;
        entry[kind] = { columns: cols, distinct_a: a.size, distinct_b: b.size, common };
      }
      cmp[t] = entry;
    }
    fs.writeFileSync(
      path.join(out, 'natural-keys.json'),
      JSON.stringify(
        {
          description:
            'Two independently installed NocoBase apps (same version, same builder-demo.mjs run): for each non-empty table, how many primary-key values and candidate natural-key values coincide. common == distinct means the key is stable across installs.',
          tables: cmp,
        },
        null,
        1,
      ) + '\n',
    );
    await other.end();
  }
  await installed.end();
  await changed.end();
  if (started) await started.end();
  console.log(`wrote fixtures for ${all.length} tables to ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
