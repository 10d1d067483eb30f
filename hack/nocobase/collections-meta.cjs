// Boot the installed NocoBase app in-process (no HTTP) against a database and dump every
// collection's metadata (table name, origin plugin, dataCategory, migrationRules, fields)
// as JSON to $META_OUT. Run from the app dir with the env shown in docs/nocobase-notes.md
// ("Regenerating the fixtures"); use a throw-away STORAGE_PATH.
const path = require('path');
const appDir = process.cwd();
const { Application, runPluginStaticImports } = require(path.join(appDir, 'node_modules/@nocobase/server'));
const { getConfig } = require(path.join(appDir, 'node_modules/@nocobase/app/lib/config'));
(async () => {
  await runPluginStaticImports();
  const config = await getConfig();
  const app = new Application(config);
  await app.load();
  const out = [];
  for (const c of app.db.collections.values()) {
    const o = c.options || {};
    out.push({ name: c.name, tableName: c.model && c.model.tableName, origin: o.origin || null, dataCategory: o.dataCategory || null,
      migrationRules: o.migrationRules ? [...new Set(o.migrationRules)] : null, dumpRules: o.dumpRules || null, autoGenId: o.autoGenId !== false,
      isThrough: !!c.isThrough, view: !!o.view, tree: o.tree || null, inherits: o.inherits || null, filterTargetKey: o.filterTargetKey || null,
      fields: [...c.fields.values()].map(f => ({ name: f.name, type: f.type, target: f.options.target || undefined, foreignKey: f.options.foreignKey || undefined, through: f.options.through || undefined, primaryKey: f.options.primaryKey || undefined })) });
  }
  require('fs').writeFileSync(process.env.META_OUT || '/tmp/meta.json', JSON.stringify(out, null, 1));
  console.log('WROTE', out.length);
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });
