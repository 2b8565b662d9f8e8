// The exported contracts as outside tools see them, and real messages against them.
//
//   node check.mjs EXPORT_DIR SAMPLES.jsonl
//
// 1. EXPORT_DIR/asyncapi.json through the official AsyncAPI parser: no error.
// 2. Every EXPORT_DIR/schemas/*.json compiled by ajv (draft 2020-12, strict mode,
//    formats): each has $schema and $id.
// 3. Every message of a demo run (capture.py) validated against its schema: every event,
//    reply and dead letter the services sent, and every command they accepted.
import fs from 'node:fs';
import path from 'node:path';
import { Parser } from '@asyncapi/parser';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [exportDir, samplesFile] = process.argv.slice(2);
const failures = [];

const parser = new Parser();
const { document, diagnostics } = await parser.parse(
  fs.readFileSync(path.join(exportDir, 'asyncapi.json'), 'utf8'));
for (const d of diagnostics.filter((d) => d.severity === 0)) {
  failures.push(`asyncapi.json: ${d.path.join('.')}: ${d.message}`);
}
if (!document) failures.push('asyncapi.json: the parser made no document');
console.log(`asyncapi.json: ${diagnostics.filter((d) => d.severity === 0).length} errors`);

const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
// Our one annotation keyword (contracts/privacy.py): declared, so strict mode checks it
// is used as documented rather than letting any unknown keyword through.
ajv.addKeyword({ keyword: 'x-privacy', metaSchema: { enum: ['personal', 'sensitive'] } });
const validators = {};
const schemaDir = path.join(exportDir, 'schemas');
for (const file of fs.readdirSync(schemaDir)) {
  const schema = JSON.parse(fs.readFileSync(path.join(schemaDir, file), 'utf8'));
  const name = path.basename(file, '.json');
  if (schema.$schema !== 'https://json-schema.org/draft/2020-12/schema' || !schema.$id) {
    failures.push(`${file}: no draft 2020-12 $schema or no $id`);
  }
  try {
    validators[name] = ajv.compile(schema);
  } catch (error) {
    failures.push(`${file}: ${error.message}`);
  }
}
console.log(`schemas: ${Object.keys(validators).length} compiled in strict mode`);

// Replies on the wire are bare; their status says which they are.
const REPLY_BY_STATUS = {
  accepted: 'CommandAccepted', rejected: 'CommandRejected',
  unavailable: 'CommandUnavailable', evaluated: 'RulesEvaluated', assigned: 'BatchAssigned',
};
const samples = fs.readFileSync(samplesFile, 'utf8').split('\n').filter(Boolean)
  .map((line) => JSON.parse(line));
const accepted = new Set(samples
  .filter((s) => s.data && s.data.status === 'accepted').map((s) => s.data.command_id));
const counts = {};
function check(kind, name, sample) {
  const validate = validators[name];
  counts[kind] = (counts[kind] ?? 0) + 1;
  if (!validate) {
    failures.push(`${sample.subject}: no schema ${name}`);
  } else if (!validate(sample.data)) {
    failures.push(`${sample.subject} (${name}): ${ajv.errorsText(validate.errors)}`);
  }
}
for (const sample of samples) {
  const tokens = sample.subject.split('.');
  const data = sample.data;
  if (tokens[0] === 'alongside' && tokens[2] === 'evt') {
    check('events', tokens[3], sample);
  } else if (tokens[0] === 'alongside' && tokens[2] === 'dlq') {
    check('dead letters', 'DeadLetter', sample);
  } else if (tokens[0] === 'alongside' && tokens[2] === 'cmd') {
    // The demo sends invalid commands on purpose; those it accepted must be valid.
    if (data && accepted.has(data.id)) check('accepted commands', tokens[4], sample);
  } else if (tokens[0].startsWith('_INBOX') && data && REPLY_BY_STATUS[data.status]
             && 'command_id' in data) {
    check('replies', REPLY_BY_STATUS[data.status], sample);
  }
}
for (const kind of ['events', 'replies', 'accepted commands', 'dead letters']) {
  console.log(`${kind}: ${counts[kind] ?? 0} validated`);
  if (!counts[kind]) failures.push(`no ${kind} in ${samplesFile}`);
}
for (const failure of failures.slice(0, 50)) console.error(failure);
if (failures.length) {
  console.error(`${failures.length} failures`);
  process.exit(1);
}
console.log('contracts: accepted by the AsyncAPI parser and ajv; every sampled message valid');
