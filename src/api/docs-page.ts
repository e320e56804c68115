/**
 * `GET /api/docs`: a self-contained page (no CDN: offline deployments have none) that renders the
 * generated document (`/api/openapi.json`) as one form per operation and sends it with fetch. It knows
 * no route: a route added to the table appears here by itself. Everything it shows goes through
 * textContent, never innerHTML.
 */
export const docsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Provider API</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
details{border:1px solid #ccc;border-radius:4px;margin:.5em 0;padding:.4em .8em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:bold}
label{display:block;margin:.3em 0}input{width:30em}textarea{width:100%;height:10em;font-family:monospace}
pre{background:#f4f4f4;padding:.6em;overflow:auto;max-height:25em;white-space:pre-wrap}
</style></head><body>
<h1 id="title">Provider API</h1><p id="desc"></p><div id="ops"></div>
<script>
const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; };
function skeleton(schema) {
  if (!schema) return null;
  if (schema.anyOf) return skeleton(schema.anyOf[0]);
  if (schema.default !== undefined) return schema.default;
  if (schema.type === 'object') { const o = {}; for (const k of schema.required || []) o[k] = skeleton(schema.properties[k]); return o; }
  if (schema.type === 'array') return [];
  if (Array.isArray(schema.type)) return '';
  return schema.type === 'number' || schema.type === 'integer' ? 0 : '';
}
function operation(path, method, op) {
  const box = el('details'); const sum = el('summary');
  sum.append(el('span', method.toUpperCase()), el('code', ' ' + path + ' '), el('span', '— ' + (op.summary || '')));
  sum.firstChild.className = 'm'; box.append(sum);
  if (op.description) box.append(el('p', op.description));
  const form = el('form'); const inputs = {};
  for (const p of op.parameters || []) {
    const label = el('label', p.name + (p.required ? ' *' : '') + ' '); const input = el('input');
    input.placeholder = JSON.stringify(p.schema); inputs[p.name] = input; label.append(input); form.append(label);
  }
  const content = op.requestBody && op.requestBody.content; let body = null;
  if (content) {
    body = el('textarea'); const type = Object.keys(content)[0];
    body.value = type === 'application/json' ? JSON.stringify(skeleton(content[type].schema), null, 2) : '';
    body.dataset.type = type; form.append(el('label', 'body (' + type + ')'), body);
  }
  const send = el('button', 'Send'); const out = el('pre'); form.append(send); box.append(form, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault(); out.textContent = '…';
    const q = new URLSearchParams(); for (const [k, i] of Object.entries(inputs)) if (i.value !== '') q.set(k, i.value);
    const init = { method: method.toUpperCase(), headers: {} };
    if (body && body.value !== '') { init.body = body.value; init.headers['content-type'] = body.dataset.type; }
    try {
      const query = q.toString();
      const res = await fetch(path + (query ? '?' + query : ''), init);
      const text = await res.text();
      out.textContent = res.status + ' ' + res.statusText + '\\n\\n' + text.slice(0, 100000);
    } catch (err) { out.textContent = String(err); }
  });
  return box;
}
fetch('/api/openapi.json').then((r) => r.json()).then((doc) => {
  document.getElementById('title').textContent = doc.info.title + ' ' + doc.info.version;
  document.getElementById('desc').textContent = doc.info.description || '';
  const ops = document.getElementById('ops');
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) ops.append(operation(path, method, op));
});
</script></body></html>
`;
