// Sends one call of each kind with the unchanged @segment/analytics-node and prints, as JSON,
// the messageIds the library generated and every HTTP request it made (to be replayed).
// Usage: node send_with_analytics_node.js <writeKey> <host>
"use strict";

const { Analytics } = require("@segment/analytics-node");

async function main() {
  const [writeKey, host] = process.argv.slice(2);
  const analytics = new Analytics({ writeKey, host });
  const messageIds = {};
  const requests = [];
  const statuses = [];
  const errors = [];

  analytics.on("http_request", (request) => requests.push(request));
  analytics.on("http_response", (response) => statuses.push(response.status));
  analytics.on("error", (error) => errors.push(String(error.reason ?? error.code)));
  const remember = (kind) => (error, ctx) => {
    if (error) errors.push(`${kind}: ${error}`);
    else messageIds[kind] = ctx.event.messageId;
  };

  analytics.identify({ userId: "user-node", traits: { email: "ada@example.com" } }, remember("identify"));
  analytics.track({ userId: "user-node", event: "Order Completed", properties: { total: 42.5 } }, remember("track"));
  analytics.page({ userId: "user-node", category: "Docs", name: "Install" }, remember("page"));
  analytics.screen({ userId: "user-node", name: "Home" }, remember("screen"));
  analytics.group({ userId: "user-node", groupId: "org-node", traits: { plan: "pro" } }, remember("group"));
  analytics.alias({ userId: "user-node-2", previousId: "user-node" }, remember("alias"));
  await analytics.closeAndFlush();

  process.stdout.write(JSON.stringify({ messageIds, requests, statuses, errors }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
