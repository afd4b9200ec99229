#!/usr/bin/env node
'use strict';
// Legacy BLE chunking as the official IoTize client does it (@iotize/tap 2.7.0,
// protocol/ble/common: BLEPacketSplitter, BLEPacketBuilder), for the interop tests.
//
//   node ble_chunks.js < {"split": ["<frame hex>", ...], "build": [["<packet hex>", ...], ...]}
//
// split: BLEPacketSplitter.wrapWithChecksum(frame, 19).getPackets(), as
//        AbstractBleProtocol.write() sends a frame (mtu 20, 19 bytes of frame per packet)
// build: the packets appended in order to a BLEPacketBuilder(255), as
//        AbstractBleProtocol.onNewLwm2mPacket() receives a response
// Output: {"split": [["<packet hex>", ...], ...],
//          "build": [{"complete": bool, "checksumValid": bool, "data": "<hex>"} | {"error"}]}

const { BLEPacketSplitter, BLEPacketBuilder, AbstractBleProtocol } =
  require('@iotize/tap/protocol/ble/common');

const PIECE = 19;

function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

function unhex(text) {
  return Uint8Array.from(Buffer.from(text, 'hex'));
}

function main(input) {
  const req = JSON.parse(input || '{}');
  const out = { split: [], build: [] };
  for (const frame of req.split || []) {
    out.split.push(BLEPacketSplitter.wrapWithChecksum(unhex(frame), PIECE).getPackets().map(hex));
  }
  for (const packets of req.build || []) {
    const builder = new BLEPacketBuilder(AbstractBleProtocol.RECEIVED_BUFFER_LENGTH);
    try {
      for (const p of packets) {
        builder.append(unhex(p));
      }
      out.build.push({
        complete: builder.hasAllChunks(),
        checksumValid: builder.isChecksumValid(),
        data: hex(builder.getData()),
      });
    } catch (e) {
      out.build.push({ error: String(e && e.message || e) });
    }
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  try {
    main(input);
  } catch (e) {
    process.stderr.write(`ble_chunks.js: ${e && e.stack || e}\n`);
    process.exit(2);
  }
});
