// Type-level check of the generated protocol bindings: `tsc --noEmit` must accept this file.
// It builds a request, reads a result and narrows a push the way a TypeScript client would.
import type {
  BulkErrorDetails,
  ErrorCode,
  BucketConfig,
  GroupByEntry,
  Operation,
  PaginateResult,
  QueryConfig,
  Request,
  ServerMessage,
  SubscribeResult,
  WhoAmI,
} from "./index.js";

const insert: Request = {
  id: 1,
  type: "store.insert",
  bucket: "users",
  data: { name: "Alice", tags: ["a", "b"] },
};

const tx: Operation = {
  type: "store.transaction",
  operations: [
    { op: "insert", bucket: "orders", data: { total: 10 } },
    { op: "update", bucket: "stock", key: "p1", data: { qty: 4 } },
  ],
};

// @ts-expect-error: `store.insert` has no field `bucketName`; a typo must not compile.
const typo: Request = { id: 2, type: "store.insert", bucketName: "users", data: {} };

const users: BucketConfig = {
  key: "id",
  schema: {
    id: { type: "string", generated: "uuid" },
    email: { type: "string", required: true, unique: true, format: "email" },
    tags: { type: "array", items: { type: "string" } },
  },
  indexes: ["email"],
  ttl: "7d",
};
const defineUsers: Request = { id: 3, type: "store.defineBucket", name: "users", config: users };

const byRole: QueryConfig = {
  bucket: "users",
  filter: { role: "{{ params.role }}" },
  sort: { email: "asc" },
  aggregate: { function: "count", groupBy: "role" },
};

// @ts-expect-error: "guid" is not a generated kind; schemas are checked too.
const badField: BucketConfig = { key: "id", schema: { id: { type: "string", generated: "guid" } } };

function describe(message: ServerMessage): string {
  switch (message.type) {
    case "welcome":
      return `protocol ${message.version}, auth ${message.requiresAuth}`;
    case "result": {
      const page = message.data as unknown as PaginateResult;
      return `result ${message.id}: ${page.hasMore}`;
    }
    case "error": {
      const code: ErrorCode = message.code;
      return `error ${code}: ${message.message}`;
    }
    case "push":
      return `push ${message.channel} ${message.subscriptionId}`;
    case "ping":
      return `ping ${message.timestamp}`;
    case "system":
      return message.event === "shutdown"
        ? `shutdown in ${message.gracePeriodMs} ms`
        : `session revoked: ${message.reason}`;
  }
}

const bulk: Request[] = [
  { id: 4, type: "store.insertMany", bucket: "users", data: [{ name: "Ann" }, { name: "Bob" }] },
  { id: 5, type: "store.updateMany", bucket: "users", filter: { role: "guest" }, data: { role: "user" } },
  { id: 6, type: "store.deleteMany", bucket: "users", filter: {} },
  { id: 7, type: "store.upsert", bucket: "users", data: { id: "a", name: "Ann" } },
  { id: 8, type: "store.groupBy", bucket: "orders", field: ["status"], aggregate: { function: "sum", field: "total" } },
];

// @ts-expect-error: `store.insertMany` takes an array of records, not one.
const oneRecord: Request = { id: 9, type: "store.insertMany", bucket: "users", data: { name: "Ann" } };

const groups: GroupByEntry[] = [{ key: { status: "paid" }, value: 3 }];
const badRecord: BulkErrorDetails = { index: 3, issues: [] };

const sub: SubscribeResult = { subscriptionId: "sub-1", data: [] };
const me: WhoAmI = { authenticated: false };

export const checked = [
  insert,
  tx,
  typo,
  describe,
  sub,
  me,
  defineUsers,
  byRole,
  badField,
  bulk,
  oneRecord,
  groups,
  badRecord,
];
