// SPDX-License-Identifier: MIT
//
// The file-transfer cases' page steps (files_cases.mjs evaluates them inside examples/web's demo
// page, served by tern-signal, with tern-send or tern-recv in the room). One expression: an
// object of functions, each answering a JSON string {ok, detail | error}.
//
// ready(p):     wait for the room and a connected peer; detail: the peer's id.
// noPeer(p):    wait until the page has no peer (a killed native peer was seen leaving).
// transfer(p):  wait until the page's newest transfer named p.name in direction p.direction
//               ('send' | 'receive') with an id above p.after is over (done or failed), or,
//               with p.bytes, until it holds that many bytes; detail: the transfer, plus
//               savedSha256 (the SHA-256 of the received file's saved bytes, by crypto.subtle)
//               for a received file that is done.
({
    async wait(fn, ms, what) {
        const end = Date.now() + ms;
        for (;;) {
            const v = await fn();
            if (v)
                return v;
            if (Date.now() > end)
                throw new Error(`timeout (${ms} ms): ${what}`);
            await new Promise((r) => setTimeout(r, 20));
        }
    },

    answer(promise) {
        return promise.then((detail) => JSON.stringify({ ok: true, detail }),
                            (e) => JSON.stringify({ ok: false, error: `${e.message || e}; page errors: ` +
                                                                     JSON.stringify(window.tern?.status().errors) }));
    },

    ready(p) {
        return this.answer((async () => {
            await window.tern.ready;
            return window.tern.waitPeer(undefined, p.timeout || 20000);
        })());
    },

    noPeer(p) {
        return this.answer(this.wait(() => window.tern.status().peers.length === 0, p.timeout || 20000,
                                     'the page to see the peer leave'));
    },

    transfer(p) {
        return this.answer((async () => {
            const pick = () => window.tern.status().transfers
                .filter((t) => t.name === p.name && t.direction === p.direction && t.id > (p.after || 0))
                .pop();
            const t = await this.wait(() => {
                const x = pick();
                if (!x)
                    return null;
                if (p.bytes !== undefined)
                    return x.bytes >= p.bytes || x.state === 'done' || x.state === 'failed' ? x : null;
                return x.state === 'done' || x.state === 'failed' ? x : null;
            }, p.timeout || 60000, `a ${p.direction} transfer of ${p.name}`);
            if (p.direction === 'receive' && t.state === 'done' && p.bytes === undefined)
                t.savedSha256 = await window.tern.fileSha256(t.id);
            return t;
        })());
    },
})
