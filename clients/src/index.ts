/** The typed SDK: generated descriptors plus helpers for events. */
export * from "./gen/groups/v1/common_pb.js";
export * from "./gen/groups/v1/organizations_pb.js";
export * from "./gen/groups/v1/groups_pb.js";
export * from "./gen/groups/v1/events_pb.js";
export * from "./events/subscriber.js";
export * from "./events/workos.js";
export * from "./sdk/clients.js";
export * from "./sdk/errors.js";
export * from "./sdk/interceptors.js";
export * from "./sdk/node.js";
export * from "./sdk/paginate.js";
