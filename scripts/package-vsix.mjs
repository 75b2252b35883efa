// Packs dist/bloom-peft-studio.vsix from the files .vscodeignore lets in (it ignores everything and lists the
// shipped files back with "!" lines). Why not `vsce package`: with --no-dependencies it never looks inside
// node_modules, so the onnxruntime-node binary the completions need was silently left out, and it globs the whole
// checkout (.venv: 40k files) before filtering, which takes minutes on a small machine. This walks only the
// listed roots and fails when a listed path matches nothing (e.g. the embedded model or a bundle is missing).
// usage: node scripts/package-vsix.mjs [out.vsix]
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const out = path.resolve(root, process.argv[2] ?? `dist/${pkg.name}.vsix`);
// Listed in .vscodeignore but allowed to be absent.
const OPTIONAL = new Set(['LICENSE', 'CHANGELOG.md', 'README.md']);

function globToRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const lines = fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8').split(/\r?\n/).map(l => l.trim()).filter(l => l && !l.startsWith('#'));
const ignore = lines.filter(l => !l.startsWith('!')).map(l => ({ glob: l, re: globToRegExp(l.replace(/^\//, '')) }));
const allow = ['package.json', ...lines.filter(l => l.startsWith('!')).map(l => l.slice(1).replace(/^\//, ''))]
  .map(glob => ({ glob, re: globToRegExp(glob), hits: 0 }));

// Roots to walk: with "**" ignored only the allow-listed prefixes can contribute, so walk just those.
const ignoresAll = ignore.some(i => i.glob === '**' || i.glob === '**/*');
const roots = ignoresAll
  ? [...new Set(allow.map(a => a.glob.split('/').filter((_, i, parts) => !parts.slice(0, i + 1).some(p => /[*?]/.test(p))).join('/')))]
  : [''];

const files = new Set();
function walk(rel) {
  const abs = path.join(root, rel);
  let st;
  try { st = fs.statSync(abs); } catch { return; }
  if (st.isDirectory()) {
    if (!ignoresAll && ['.git', 'node_modules', '.venv'].includes(path.basename(rel))) return;
    for (const e of fs.readdirSync(abs)) walk(rel ? `${rel}/${e}` : e);
    return;
  }
  if (!st.isFile() || path.resolve(abs) === out || rel.endsWith('.vsix') || /(^|\/)__pycache__\//.test(rel)) return;
  const allowed = allow.filter(a => a.re.test(rel));
  for (const a of allowed) a.hits++;
  if (allowed.length || !ignore.some(i => i.re.test(rel))) files.add(rel);
}
for (const r of roots) walk(r);

const missing = allow.filter(a => a.hits === 0 && !OPTIONAL.has(a.glob));
if (missing.length) {
  console.error(`package-vsix: nothing matches ${missing.map(m => `"!${m.glob}"`).join(', ')} (.vscodeignore).`);
  console.error('Hint: run `npm run setup` (bundles, node modules) and make sure models/bloom-tiny exists (scripts/make_model.py).');
  process.exit(1);
}
if (!files.has(pkg.main.replace(/^\.\//, ''))) { console.error(`package-vsix: main ${pkg.main} is not packed`); process.exit(1); }

const x = s => String(s).replace(/[<>&"']/g, c => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);
const assets = [
  '<Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" Addressable="true" />',
  files.has('README.md') ? '<Asset Type="Microsoft.VisualStudio.Services.Content.Details" Path="extension/README.md" Addressable="true" />' : '',
  files.has('LICENSE') ? '<Asset Type="Microsoft.VisualStudio.Services.Content.License" Path="extension/LICENSE" Addressable="true" />' : '',
].filter(Boolean).join('\n    ');
const manifest = `<?xml version="1.0" encoding="utf-8"?>
<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011" xmlns:d="http://schemas.microsoft.com/developer/vsx-schema-design/2011">
  <Metadata>
    <Identity Language="en-US" Id="${x(pkg.name)}" Version="${x(pkg.version)}" Publisher="${x(pkg.publisher)}" TargetPlatform="linux-x64" />
    <DisplayName>${x(pkg.displayName ?? pkg.name)}</DisplayName>
    <Description xml:space="preserve">${x(pkg.description ?? '')}</Description>
    <Tags>${x((pkg.keywords ?? []).join(','))}</Tags>
    <Categories>${x((pkg.categories ?? []).join(','))}</Categories>
    <GalleryFlags>Public</GalleryFlags>
    <Properties>
      <Property Id="Microsoft.VisualStudio.Code.Engine" Value="${x(pkg.engines.vscode)}" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionDependencies" Value="" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionPack" Value="" />
      <Property Id="Microsoft.VisualStudio.Code.ExtensionKind" Value="workspace" />
      <Property Id="Microsoft.VisualStudio.Code.ExecutesCode" Value="true" />
    </Properties>
  </Metadata>
  <Installation><InstallationTarget Id="Microsoft.VisualStudio.Code" /></Installation>
  <Dependencies />
  <Assets>
    ${assets}
  </Assets>
</PackageManifest>
`;
const exts = new Set(['.vsixmanifest', '.json', ...[...files].map(f => path.extname(f).toLowerCase() || '.txt')]);
const contentTypes = `<?xml version="1.0" encoding="utf-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">${[...exts].sort().map(e => `<Default Extension="${x(e)}" ContentType="application/octet-stream" />`).join('')}</Types>
`;

// A plain zip writer (deflate, 32-bit sizes: a .vsix stays far below 4 GB).
const entries = [];
const chunks = [];
let offset = 0;
function add(name, data, mode = 0o644) {
  const nameBuf = Buffer.from(name, 'utf8');
  const deflated = zlib.deflateRawSync(data, { level: 6 });
  const useDeflate = deflated.length < data.length;
  const body = useDeflate ? deflated : data;
  const crc = zlib.crc32(data) >>> 0;
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(20, 4); local.writeUInt16LE(0x0800, 6);
  local.writeUInt16LE(useDeflate ? 8 : 0, 8); local.writeUInt16LE(0, 10); local.writeUInt16LE(0x21, 12);
  local.writeUInt32LE(crc, 14); local.writeUInt32LE(body.length, 18); local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(nameBuf.length, 26); local.writeUInt16LE(0, 28);
  chunks.push(local, nameBuf, body);
  entries.push({ nameBuf, crc, csize: body.length, size: data.length, method: useDeflate ? 8 : 0, offset, mode });
  offset += local.length + nameBuf.length + body.length;
}
add('extension.vsixmanifest', Buffer.from(manifest));
add('[Content_Types].xml', Buffer.from(contentTypes));
let bytes = 0;
for (const f of [...files].sort()) {
  const abs = path.join(root, f);
  const data = fs.readFileSync(abs);
  bytes += data.length;
  add(`extension/${f}`, data, fs.statSync(abs).mode & 0o111 ? 0o755 : 0o644); // readable by whoever installs it
}
const central = [];
for (const e of entries) {
  const c = Buffer.alloc(46);
  c.writeUInt32LE(0x02014b50, 0); c.writeUInt16LE(0x031e, 4); c.writeUInt16LE(20, 6); c.writeUInt16LE(0x0800, 8);
  c.writeUInt16LE(e.method, 10); c.writeUInt16LE(0, 12); c.writeUInt16LE(0x21, 14); c.writeUInt32LE(e.crc, 16);
  c.writeUInt32LE(e.csize, 20); c.writeUInt32LE(e.size, 24); c.writeUInt16LE(e.nameBuf.length, 28);
  c.writeUInt32LE(((0o100000 | e.mode) << 16) >>> 0, 38); c.writeUInt32LE(e.offset, 42);
  central.push(c, e.nameBuf);
}
const centralSize = central.reduce((n, b) => n + b.length, 0);
const end = Buffer.alloc(22);
end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(entries.length, 8); end.writeUInt16LE(entries.length, 10);
end.writeUInt32LE(centralSize, 12); end.writeUInt32LE(offset, 16);
fs.mkdirSync(path.dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
fs.writeFileSync(tmp, Buffer.concat([...chunks, ...central, end]));
fs.renameSync(tmp, out);
console.log(`${path.relative(root, out)}: ${files.size} files, ${(bytes / 2 ** 20).toFixed(1)} MB -> ${(fs.statSync(out).size / 2 ** 20).toFixed(1)} MB`);
