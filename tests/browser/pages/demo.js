// SPDX-License-Identifier: MIT
//
// The demo page case, in two steps that driver.mjs evaluates inside examples/web's page (served
// by tern-signal, connected to tern-echo), with the file chosen in between through the page's
// own file input, as a person would. This file is one expression: an object of two functions.
// Both answer a JSON string {ok, detail | error}.
//
// chat(p):  wait for the peer and the "chat" channel, type a line into the chat form and
//           submit it, and wait for tern-echo's copy to show in the chat log under its id.
// files(p): wait for the page's transfers of the chosen file to end: the one it sent (whose
//           receiver, the page itself through the echo, reported the SHA-256 it computed) and
//           the echoed copy it received; every SHA-256 must be p.sha256, which the driver
//           computed from the file on disk (not with the page's own SHA-256 code).
({
    async chat(p) {
        const until = async (fn, ms, what) => {
            const end = Date.now() + ms;
            for (;;) {
                const v = fn();
                if (v)
                    return v;
                if (Date.now() > end)
                    throw new Error(`timeout (${ms} ms): ${what}`);
                await new Promise((r) => setTimeout(r, 25));
            }
        };
        try {
            await window.tern.ready;
            const peer = await window.tern.waitPeer(undefined, 15000);
            await window.tern.waitChannel('chat', 10000);
            const text = `hello from ${p.browser}, h\u00e9llo \u2713 ${p.room}`;
            const input = document.getElementById('chat-input');
            input.value = text;
            document.getElementById('chat-form').requestSubmit();
            if (input.value !== '')
                throw new Error('the chat form did not take the line');
            const want = `${peer}: ${text}`;
            await until(() => [...document.querySelectorAll('#chat-log div')]
                                  .some((d) => d.textContent === want),
                        10000, `"${want}" in the chat log`);
            return JSON.stringify({ ok: true, detail: `chat line echoed by ${peer}` });
        } catch (e) {
            return JSON.stringify({ ok: false, error: `${e.message || e}; page errors: ` +
                                                     JSON.stringify(window.tern?.status().errors) });
        }
    },

    async files(p) {
        const end = Date.now() + p.timeout;
        let s;
        for (;;) {
            s = window.tern.status();
            const mine = s.transfers.filter((t) => t.name === p.name);
            const sent = mine.find((t) => t.direction === 'send');
            const got = mine.find((t) => t.direction !== 'send');
            const over = (t) => t && (t.state === 'done' || t.state === 'failed');
            if (over(sent) && over(got)) {
                const bad = [];
                for (const [what, t] of [['sent', sent], ['received', got]]) {
                    if (!t.ok || t.state !== 'done')
                        bad.push(`${what}: ${t.state} ${t.error ?? ''}`);
                    if (t.size !== p.size || t.bytes !== p.size)
                        bad.push(`${what}: ${t.bytes} of ${t.size} bytes, want ${p.size}`);
                    for (const k of ['sha256', 'remoteSha256'])
                        if (t[k] !== undefined && t[k] !== null && t[k] !== p.sha256)
                            bad.push(`${what}: ${k} ${t[k]}`);
                }
                if (sent.sha256 !== p.sha256 || sent.remoteSha256 !== p.sha256)
                    bad.push(`the sender's hashes: ${sent.sha256} / ${sent.remoteSha256}`);
                if (got.sha256 !== p.sha256)
                    bad.push(`the echoed copy's hash: ${got.sha256}`);
                if (bad.length)
                    return JSON.stringify({ ok: false, error: bad.join('; ') });
                return JSON.stringify({ ok: true, detail: `${p.size} bytes sent and echoed ` +
                                                          `back, SHA-256 ${p.sha256.slice(0, 16)}...` });
            }
            if (Date.now() > end)
                return JSON.stringify({ ok: false, error: `transfers not over after ${p.timeout} ms: ` +
                                                          JSON.stringify(mine) + '; page errors: ' +
                                                          JSON.stringify(s.errors) });
            await new Promise((r) => setTimeout(r, 50));
        }
    },
})
