// A checkout driven by ketting 8, a generic HAL and HAL-FORMS client written
// elsewhere: from the entry point, by link relations and template names only.
// It reads a sku from the menu's embedded items (ketting reads an embedded
// resource only when it has a `self` link), starts a checkout, fills the
// add-item template, checks out and pays through the pay template. It never
// builds a URL beyond the entry point, and sends only fields the templates
// describe.
//
//   node tests/ketting/checkout.mjs http://127.0.0.1:8080
//
// Exits non-zero, saying why, when any step does not go as it must.
import assert from 'node:assert/strict';
import { Ketting } from 'ketting';

const base = process.argv[2];
assert.ok(base, 'usage: node checkout.mjs BASE_URL');

// Warnings are how ketting says it ignored part of a document: none may appear.
const warnings = [];
const warn = console.warn;
console.warn = (...args) => { warnings.push(args.join(' ')); warn(...args); };

const client = new Ketting(base.replace(/\/$/, '') + '/');
const home = client.go();

// The menu: every store and item is a resource of its own (embedded, with `self`).
const menu = await home.follow('menu');
const stores = await menu.followAll('stores');
assert.ok(stores.length > 0, 'the menu embeds its stores');
const store = await stores[0].get();
const items = await stores[0].followAll('items');
assert.ok(items.length > 0, `${store.data.name} embeds its items`);
const item = (await items[0].get()).data;
assert.ok(item.sku, 'an item has a sku');

// A new checkout: start-checkout is a link to POST to.
const started = await home.follow('start-checkout');
const basket = await started.post({});
assert.equal(basket.data.status, 'open');

// add-item: the template says what to send; its sku field lists the menu.
const addItem = basket.action('add-item');
const skuField = addItem.field('sku');
assert.ok(skuField, 'add-item has a sku field');
if (skuField.options) {
  assert.ok(item.sku in skuField.options, `the sku field offers ${item.sku}`);
}
const withItem = await addItem.submit({ sku: item.sku, quantity: 2 });
assert.equal(withItem.data.state.items[0].sku, item.sku);
assert.equal(withItem.data.state.items[0].qty, 2);

// checkout (no input), then pay with the card field the template describes.
const priced = await withItem.action('checkout').submit({});
assert.equal(priced.data.status, 'priced');
const pay = priced.action('pay');
assert.deepEqual(pay.fields.map((f) => f.name).includes('card_number'), true);
const paid = await pay.submit({ card_number: '4242424242424242' });
assert.equal(paid.data.status, 'paid', JSON.stringify(paid.data));
assert.equal(paid.data.state.total, item.price * 2 + store.data.delivery_fee);

// The order, by its link (In-Only: it appears once orders has placed it).
const order = paid.follow('order');
let placed;
for (let i = 0; i < 200 && !placed; i++) {
  try {
    placed = (await order.refresh()).data;
  } catch (e) {
    if (e.status !== 404) throw e;
    await new Promise((r) => setTimeout(r, 50));
  }
}
assert.ok(placed, 'the order was placed');
assert.equal(placed.status, 'placed');

assert.deepEqual(warnings, [], 'ketting ignored nothing');
console.log(`ketting: checkout of 2 x ${item.sku} paid (${paid.data.state.total} ${item.currency}), order ${placed.id} placed`);
