#!/usr/bin/env node
'use strict';
// Drive a Tap over TCP with the official IoTize client (@iotize/tap 2.7.0) and print one JSON
// document with what the library decoded.
//
//   node driver.js --host 127.0.0.1 --port 2000 [--timeout MS] [--ops JSON | < ops.json]
//
// Operations (a JSON list, or {"ops": [...]}), each run through the library's public API:
//   {"op": "call", "service": "device", "method": "getSerialNumber", "args": []}
//       tap.service.<service>.<method>(...args) -> TapResponse; value = response.body()
//   {"op": "multi", "calls": [{"service": "device", "method": "getSerialNumber"}, ...]}
//       tap.service.interface.executeMultipleCalls([tap.service.device.getSerialNumberCall(),
//       ...]) -> one TapResponse per call
//   {"op": "data.register", "bundles": {"sensors": {"id": 1, "variables":
//       {"temperature": {"id": 1, "dataType": "FLOAT32", "length": 1}}}}}
//       tap.data.registerBundles(...) with dataType = VariableType.Data[name]
//   {"op": "data.read", "variable": "temperature"}   tap.data.variable(key).read()
//   {"op": "data.write", "variable": "setpoint", "value": -5}
//       tap.data.variable(key).write(value) (POST /1029/{id}/5 through the library)
//   {"op": "bundle.read", "bundle": "sensors"}       tap.data.bundle(key).read() (TLV)
//   {"op": "variable.read", "id": 99, "dataType": "UINT8"}
//       tap.data.createConfiguredVariable(...).read(): a variable the board may not have
//   {"op": "auth.login", "username": "admin", "password": "admin"}
//       tap.auth.login(...): the library picks SCRAM, hashed or basic login from GET /1024//6
//       -> {method, encrypted, groupId, name, lifeTime}
//   {"op": "auth.logout"}                          tap.auth.logout() -> {encrypted, groupId}
//   {"op": "auth.changePassword", "password": "x", "userId": 65535}
//       tap.auth.changePassword(...): SCRAM keys, H(pw) or ASCII, as the library decides
//   {"op": "auth.clearCache"}   forget the login method (after the security options change)
//   {"op": "encryption.start", "ivPeriod": 100}
//       setInitializationVectorRefreshPeriod(ivPeriod) then tap.encryption.start() (GET
//       /1024//47, then /1024//45 unless the period is 0) -> {started, keyLength}
//   {"op": "encryption.period", "ivPeriod": 1}      change the IV period of the session
//   {"op": "encryption.state"}   -> {started, frameCounter, ivPeriod} (never keys)
//   {"op": "encryption.stop"}
//
// Output: {"connected": bool, "results": [{"op", "ok", "value"?, "status"?, "statusName"?,
// "error"?}], "error"?, "stats"}. Byte arrays are printed as {"bytes": "<hex>"}. Exit status 0
// when the run completed (operation errors are results, not failures), 1 when the Tap could
// not be reached, 2 on bad usage.

const { Tap } = require('@iotize/tap');
require('@iotize/tap/service/all');
require('@iotize/tap/ext/data');
const { ScramAuth } = require('@iotize/tap/auth');
const { ResultCode } = require('@iotize/tap/client/api');
const { VariableType } = require('@iotize/tap/service/impl/variable');
const { TcpComProtocol } = require('./tcp-protocol');

function usage(msg) {
  process.stderr.write(`driver.js: ${msg}\n`);
  process.stderr.write('usage: node driver.js --host H --port P [--timeout MS] [--ops JSON]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: undefined, timeout: 3000, ops: undefined };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const value = argv[i + 1];
    if (value === undefined) usage(`${key} needs a value`);
    switch (key) {
      case '--host': args.host = value; break;
      case '--port': args.port = parseInt(value, 10); break;
      case '--timeout': args.timeout = parseInt(value, 10); break;
      case '--ops': args.ops = value; break;
      default: usage(`unknown argument ${key}`);
    }
    i++;
  }
  if (!Number.isInteger(args.port)) usage('--port is required');
  return args;
}

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { text += d; });
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

function resultCodeName(status) {
  if (typeof status !== 'number') return undefined;
  return Object.keys(ResultCode).find((k) => ResultCode[k] === status) || `0x${status.toString(16)}`;
}

// JSON view of what the library returned: bytes as hex, non-finite numbers as strings.
function toJson(value) {
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value).toString('hex') };
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (value && typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value)) out[k] = toJson(value[k]);
    return out;
  }
  return value;
}

// The response behind a library error: TapResponseStatusError carries it, TapDataError wraps it.
function responseOf(err) {
  for (let e = err; e; e = e.cause) {
    if (e.response && typeof e.response.status === 'number') return e.response;
  }
  return undefined;
}

function describeError(err) {
  const out = {
    name: err && err.constructor ? err.constructor.name : typeof err,
    code: err && err.code,
    message: err && err.message ? err.message : String(err),
  };
  if (err && err.cause) {
    out.cause = { name: err.cause.constructor.name, code: err.cause.code, message: err.cause.message };
  }
  const response = responseOf(err);
  if (response) {
    out.status = response.status;
    out.statusName = resultCodeName(response.status);
  }
  return out;
}

// TapResponse -> {ok, status, statusName, value | error}; value is the library's decoding.
function describeResponse(response) {
  const out = {
    status: response.status,
    statusName: resultCodeName(response.status),
    ok: response.isSuccessful(),
  };
  try {
    out.value = toJson(response.body());
  } catch (err) {
    out.ok = false;
    out.error = describeError(err);
  }
  return out;
}

function service(tap, name) {
  const s = tap.service[name];
  if (!s) throw new Error(`no service "${name}" in tap.service`);
  return s;
}

function dataType(name) {
  const t = VariableType.Data[name];
  if (typeof t !== 'number') throw new Error(`unknown VariableType.Data "${name}"`);
  return t;
}

function dataConfig(bundles) {
  const out = {};
  for (const [key, b] of Object.entries(bundles)) {
    const variables = {};
    for (const [vkey, v] of Object.entries(b.variables || {})) {
      variables[vkey] = { id: v.id, dataType: dataType(v.dataType), length: v.length || 1 };
    }
    out[key] = { id: b.id, variables };
  }
  return out;
}

// What the library knows of the session, without its keys.
function encryptionState(tap) {
  const o = tap.encryption.getEncryptionOptions();
  return { started: tap.encryption.isStarted, frameCounter: o.frameCounter,
    ivPeriod: o.initializationVectorResetPeriod };
}

function authState(tap) {
  const auth = tap.auth._auth;
  let method;
  if (auth instanceof ScramAuth) method = 'scram';
  else if (auth) method = auth.hashPassword ? 'hashed' : 'basic';
  const state = tap.auth.sessionStateSnapshot;
  return { method, encrypted: tap.encryption.isStarted, groupId: state.groupId,
    name: state.name, lifeTime: state.lifeTime };
}

async function runOp(tap, op) {
  switch (op.op) {
    case 'call': {
      const s = service(tap, op.service);
      if (typeof s[op.method] !== 'function') throw new Error(`no method ${op.service}.${op.method}`);
      return describeResponse(await s[op.method](...(op.args || [])));
    }
    case 'multi': {
      const calls = op.calls.map((c) => {
        const s = service(tap, c.service);
        const factory = s[`${c.method}Call`];
        if (typeof factory !== 'function') throw new Error(`no call ${c.service}.${c.method}Call`);
        return factory.apply(s, c.args || []);
      });
      const responses = await tap.service.interface.executeMultipleCalls(calls);
      return { ok: true, value: responses.map(describeResponse) };
    }
    case 'data.register': {
      const registered = tap.data.registerBundles(dataConfig(op.bundles));
      return { ok: true, value: Object.keys(registered) };
    }
    case 'data.read':
      return { ok: true, value: toJson(await tap.data.variable(op.variable).read()) };
    case 'data.write':
      await tap.data.variable(op.variable).write(op.value);
      return { ok: true };
    case 'bundle.read':
      return { ok: true, value: toJson(await tap.data.bundle(op.bundle).read()) };
    case 'variable.read': {
      const v = tap.data.createConfiguredVariable(`variable${op.id}`, {
        id: op.id, dataType: dataType(op.dataType), length: op.length || 1,
      });
      return { ok: true, value: toJson(await v.read()) };
    }
    case 'auth.login': {
      const session = await tap.auth.login({ username: op.username, password: op.password });
      return { ok: true, value: { ...authState(tap), sessionKey: session && session.key ? 'set' : 'none' } };
    }
    case 'auth.logout':
      await tap.auth.logout();
      return { ok: true, value: authState(tap) };
    case 'auth.changePassword':
      await tap.auth.changePassword(op.password, op.userId);
      return { ok: true };
    case 'auth.clearCache':
      tap.auth.clearCache();
      return { ok: true };
    case 'encryption.start': {
      if (op.ivPeriod !== undefined) tap.encryption.setInitializationVectorRefreshPeriod(op.ivPeriod);
      const key = await tap.encryption.start();
      return { ok: true, value: { started: tap.encryption.isStarted, keyLength: key ? key.length : 0 } };
    }
    case 'encryption.period':
      tap.encryption.setInitializationVectorRefreshPeriod(op.ivPeriod);
      return { ok: true };
    case 'encryption.state':
      return { ok: true, value: encryptionState(tap) };
    case 'encryption.stop':
      tap.encryption.stop();
      return { ok: true, value: encryptionState(tap) };
    default:
      throw new Error(`unknown op "${op.op}"`);
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let ops;
  try {
    ops = JSON.parse(args.ops !== undefined ? args.ops : await readStdin());
  } catch (err) {
    usage(`operations are not JSON: ${err.message}`);
  }
  if (ops && !Array.isArray(ops)) ops = ops.ops;
  if (!Array.isArray(ops)) usage('operations must be a JSON list');

  const protocol = new TcpComProtocol({ host: args.host, port: args.port, sendTimeoutMs: args.timeout });
  const tap = Tap.fromProtocol(protocol);
  const doc = { connected: false, results: [] };
  let rc = 0;
  try {
    await tap.connect();
    doc.connected = tap.isConnected();
    for (const op of ops) {
      let result;
      try {
        result = await runOp(tap, op);
      } catch (err) {
        result = { ok: false, error: describeError(err) };
      }
      doc.results.push({ op: op.op, ...result });
    }
    await tap.disconnect();
  } catch (err) {
    doc.error = describeError(err);
    rc = 1;
  }
  doc.stats = protocol.stats;
  process.stdout.write(`${JSON.stringify(doc)}\n`, () => process.exit(rc));
}

main().catch((err) => {
  process.stderr.write(`driver.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
