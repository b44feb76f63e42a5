#!/usr/bin/env python3
"""An independent reader and writer of encrypted sparse bundles (hdiutil's encrcdsa v2), written
from ../shared/reference/encrypted-sparsebundle.md and nothing of sbm, so tests can check sbm in
both directions. The password is read from standard input, whole, as hdiutil's -stdinpass does.

  encrcdsa.py decrypt BUNDLE OUT.raw                 whole plaintext disk (missing bands = zeros)
  encrcdsa.py make RAW BUNDLE KEYBITS BAND ITERS     a new bundle from a raw image
  encrcdsa.py check-token BUNDLE                     prints the header facts as JSON

Exit status 3 for a wrong password (padding or CKIE check fails)."""
import hashlib
import hmac
import json
import os
import plistlib
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES  # cryptography >= 43
except ImportError:  # older releases (Debian 12 ships 38)
    TripleDES = algorithms.TripleDES

TOKEN_BYTES = 0x1DE00
HEADER = ">8s7I16sIQQI"  # signature .. keyRecordCount, 0x4C bytes
RECORD_POINTER = ">IQQ"
PASSPHRASE = ">4I32sI32s5I"  # kdf .. encryptedKeyblobLen, 0x68 bytes


def parse_token(token):
    (sig, version, iv_len, mode, alg, key_bits, ivkey_alg, ivkey_bits, uuid, chunk, data_len, data_start,
     count) = struct.unpack_from(HEADER, token, 0)
    assert sig == b"encrcdsa" and version == 2, "not an encrcdsa v2 token"
    assert (iv_len, mode, alg, ivkey_alg, ivkey_bits) == (16, 5, 0x80000001, 0x5B, 160), "unexpected algorithms"
    assert key_bits in (128, 256)
    records = []
    for index in range(count):
        rtype, offset, length = struct.unpack_from(RECORD_POINTER, token, 0x4C + 20 * index)
        if rtype != 1:
            continue
        (kdf, prng, iters, salt_len, salt, biv_len, biv, kek_bits, wrap_alg, pad, wrap_mode,
         blob_len) = struct.unpack_from(PASSPHRASE, token, offset)
        assert (kdf, kek_bits, wrap_alg, pad, wrap_mode) == (103, 192, 17, 7, 6)
        blob = token[offset + 0x68: offset + 0x68 + blob_len]
        records.append(dict(iters=iters, salt=salt[:salt_len], iv=biv[:biv_len], blob=blob))
    return dict(key_bits=key_bits, chunk=chunk, uuid=uuid.hex(), records=records, data_start=data_start)


def unlock(facts, password):
    for record in facts["records"]:
        kek = hashlib.pbkdf2_hmac("sha1", password, record["salt"], record["iters"], 24)
        d = Cipher(TripleDES(kek), modes.CBC(record["iv"])).decryptor()
        padded = d.update(record["blob"]) + d.finalize()
        pad = padded[-1]
        if not 1 <= pad <= 8 or padded[-pad:] != bytes([pad]) * pad:
            continue
        data = padded[:-pad]
        if not data.endswith(b"CKIE\0"):
            continue
        n = facts["key_bits"] // 8
        return data[:n], data[n:n + 20]
    return None


def chunk_iv(hmac_key, number):
    return hmac.new(hmac_key, struct.pack(">I", number), hashlib.sha1).digest()[:16]


def decrypt(bundle, out_path, password):
    info = plistlib.load(open(os.path.join(bundle, "Info.plist"), "rb"))
    size, band = info["size"], info["band-size"]
    facts = parse_token(open(os.path.join(bundle, "token"), "rb").read())
    keys = unlock(facts, password)
    if keys is None:
        sys.stderr.write("wrong password\n")
        sys.exit(3)
    aes, hk = keys
    chunk = facts["chunk"]
    with open(out_path, "wb") as out:
        for b in range((size + band - 1) // band):
            length = min(band, size - b * band)
            path = os.path.join(bundle, "bands", "%x" % b)
            cipher = open(path, "rb").read() if os.path.exists(path) else b""
            assert len(cipher) % chunk == 0, "band %x is not whole chunks" % b
            plain = bytearray()
            for k in range(len(cipher) // chunk):  # chunk numbers restart in every band
                d = Cipher(algorithms.AES(aes), modes.CBC(chunk_iv(hk, k))).decryptor()
                plain += d.update(cipher[k * chunk:(k + 1) * chunk]) + d.finalize()
            out.write(bytes(plain[:length]) + b"\0" * max(0, length - len(plain)))


PLIST = ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
         '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0">\n<dict>\n'
         '\t<key>CFBundleInfoDictionaryVersion</key>\n\t<string>6.0</string>\n\t<key>band-size</key>\n'
         '\t<integer>{b}</integer>\n\t<key>bundle-backingstore-version</key>\n\t<integer>1</integer>\n'
         '\t<key>diskimage-bundle-type</key>\n\t<string>com.apple.diskimage.sparsebundle</string>\n'
         '\t<key>size</key>\n\t<integer>{s}</integer>\n</dict>\n</plist>\n')


def make(raw, bundle, password, key_bits, band, iters):
    aes, hk = os.urandom(key_bits // 8), os.urandom(20)
    salt, iv, uuid = os.urandom(20), os.urandom(8), os.urandom(16)
    key_data = aes + hk + b"CKIE\0"
    pad = 8 - len(key_data) % 8
    kek = hashlib.pbkdf2_hmac("sha1", password, salt, iters, 24)
    e = Cipher(TripleDES(kek), modes.CBC(iv)).encryptor()
    blob = e.update(key_data + bytes([pad]) * pad) + e.finalize()
    token = bytearray(TOKEN_BYTES)
    struct.pack_into(HEADER, token, 0, b"encrcdsa", 2, 16, 5, 0x80000001, key_bits, 0x5B, 160, uuid, 512, 0,
                     TOKEN_BYTES, 1)
    struct.pack_into(RECORD_POINTER, token, 0x4C, 1, 0x60, 0x268)
    struct.pack_into(PASSPHRASE, token, 0x60, 103, 0, iters, len(salt), salt, len(iv), iv, 192, 17, 7, 6, len(blob))
    token[0xC8:0xC8 + len(blob)] = blob
    data = open(raw, "rb").read()
    os.makedirs(os.path.join(bundle, "bands"))
    for name in ("Info.bckup", "Info.plist"):
        open(os.path.join(bundle, name), "w").write(PLIST.format(b=band, s=len(data)))
    open(os.path.join(bundle, "token"), "wb").write(bytes(token))
    for offset in range(0, len(data), band):
        plain = data[offset:offset + band]
        if not plain.strip(b"\0"):
            continue
        with open(os.path.join(bundle, "bands", "%x" % (offset // band)), "wb") as f:
            for c in range(0, len(plain), 512):
                e = Cipher(algorithms.AES(aes), modes.CBC(chunk_iv(hk, c // 512))).encryptor()
                f.write(e.update(plain[c:c + 512]) + e.finalize())


def main(argv):
    command = argv[0]
    if command == "decrypt":
        decrypt(argv[1], argv[2], sys.stdin.buffer.read())
    elif command == "make":
        make(argv[1], argv[2], sys.stdin.buffer.read(), int(argv[3]), int(argv[4]), int(argv[5]))
    elif command == "check-token":
        facts = parse_token(open(os.path.join(argv[1], "token"), "rb").read())
        token_len = os.path.getsize(os.path.join(argv[1], "token"))
        print(json.dumps(dict(keyBits=facts["key_bits"], chunk=facts["chunk"], records=len(facts["records"]),
                              iterations=[r["iters"] for r in facts["records"]], tokenBytes=token_len,
                              dataStart=facts["data_start"])))
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main(sys.argv[1:])
