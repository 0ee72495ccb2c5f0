/** The browser entry of the SDK: generated descriptors, Connect-Web clients and helpers (no Node or NATS code). */
export * from "./gen/groups/v1/common_pb.js";
export * from "./gen/groups/v1/organizations_pb.js";
export * from "./gen/groups/v1/groups_pb.js";
export * from "./gen/groups/v1/events_pb.js";
export * from "./sdk/errors.js";
export * from "./sdk/interceptors.js";
export * from "./sdk/paginate.js";
export * from "./sdk/web.js";
export * from "./events/workos.js";
