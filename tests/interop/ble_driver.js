#!/usr/bin/env node
'use strict';
// Drive a virtual board over its emulated BLE radio with the official IoTize client
// (@iotize/tap 2.7.0: Tap.fromProtocol over its own UniversalBleProtocolAdapter, see
// ble-protocol.js) and print one JSON document with what the library decoded.
//
//   node ble_driver.js --vble SOCKET [--service large-frame|legacy] [--mtu N]
//                      [--timeout MS] < calls.json
//
// calls.json: [{"service": "device", "method": "getSerialNumber", "args": []}, ...], run as
// tap.service.<service>.<method>(...args); an argument {"bytes": "<hex>"} is a Uint8Array.
// Output: {"connected", "service": "large-frame"|"legacy" (what the library chose), "mtu",
// "results": [{"ok", "status", "value"?, "error"?}], "stats", "error"?}; exit 1 when the
// board could not be reached.

const { Tap } = require('@iotize/tap');
require('@iotize/tap/service/all');
const { vbleProtocol } = require('./ble-protocol');

function parseArgs(argv) {
  const args = { vble: undefined, service: 'large-frame', mtu: 517, timeout: 4000 };
  for (let i = 0; i + 1 < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--vble') args.vble = value;
    else if (key === '--service') args.service = value;
    else if (key === '--mtu') args.mtu = parseInt(value, 10);
    else if (key === '--timeout') args.timeout = parseInt(value, 10);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.vble) throw new Error('--vble SOCKET is required');
  return args;
}

function fromJson(v) {
  return v && typeof v === 'object' && typeof v.bytes === 'string'
    ? Uint8Array.from(Buffer.from(v.bytes, 'hex')) : v;
}

function toJson(v) {
  return v instanceof Uint8Array ? { bytes: Buffer.from(v).toString('hex') } : v;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const calls = JSON.parse(input || '[]');
  const protocol = vbleProtocol(args.vble, { service: args.service, mtu: args.mtu,
    sendTimeoutMs: args.timeout });
  const tap = Tap.fromProtocol(protocol);
  const doc = { connected: false, results: [] };
  let rc = 0;
  try {
    await tap.connect();
    doc.connected = tap.isConnected();
    doc.service = protocol.useSplitter ? 'legacy' : 'large-frame';
    doc.mtu = protocol.peripheral.mtu;
    for (const c of calls) {
      try {
        const response = await tap.service[c.service][c.method](...(c.args || []).map(fromJson));
        const out = { ok: response.isSuccessful(), status: response.status };
        if (out.ok) out.value = toJson(response.body());
        doc.results.push(out);
      } catch (err) {
        doc.results.push({ ok: false, error: String(err && err.message || err) });
      }
    }
    await tap.disconnect();
  } catch (err) {
    doc.error = String(err && err.message || err);
    rc = 1;
  }
  doc.stats = protocol.peripheralStats;
  process.stdout.write(`${JSON.stringify(doc)}\n`, () => process.exit(rc));
}

main().catch((err) => {
  process.stderr.write(`ble_driver.js: ${err && err.stack || err}\n`);
  process.exit(2);
});
