import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ListEventsRequestSchema } from "../../clients/src/gen/groups/v1/events_pb.js";
import {
  BatchAddGroupMembersRequestSchema,
  CreateGroupRequestSchema,
  CreateGroupResponseSchema,
  ListGroupsRequestSchema,
} from "../../clients/src/gen/groups/v1/groups_pb.js";
import {
  binaryFieldFaults,
  jsonFieldFaults,
  MAX_FIELDS_READ_AGAIN,
} from "../../server/src/rpc/decode-faults.js";
import { MAX_FIELD_VIOLATIONS } from "../../server/src/rpc/errors.js";
import { withInvalidUtf8 } from "../support/bodies.js";

const fieldsOf = (faults: { field: string }[]) => faults.map((f) => f.field);

describe("binaryFieldFaults", () => {
  it("names every field whose bytes are not UTF-8, and none of the good ones", () => {
    const bytes = withInvalidUtf8(
      CreateGroupRequestSchema,
      { organizationId: "org_fine", name: "NAMEX", description: "DESCX", requestId: "req" },
      ["NAMEX", "DESCX"],
    );
    const faults = binaryFieldFaults(CreateGroupRequestSchema, bytes);
    expect(fieldsOf(faults)).toEqual(["name", "description"]);
    expect(faults[0].description).toMatch(/utf-8/i);
  });

  it("names each bad element of a repeated field by its index", () => {
    const ids = ["om_AAAA", "om_BBBB", "om_CCCC", "om_DDDD"];
    const bytes = withInvalidUtf8(
      BatchAddGroupMembersRequestSchema,
      { organizationId: "org_x", groupId: "group_x", organizationMembershipIds: ids },
      ["BBBB", "DDDD"],
    );
    expect(fieldsOf(binaryFieldFaults(BatchAddGroupMembersRequestSchema, bytes))).toEqual([
      "organization_membership_ids[1]",
      "organization_membership_ids[3]",
    ]);
  });

  it("names a field inside a nested message by its path", () => {
    const bytes = withInvalidUtf8(
      CreateGroupResponseSchema,
      { group: { id: "group_x", name: "NAMEX", description: "fine" } },
      ["NAMEX"],
    );
    expect(fieldsOf(binaryFieldFaults(CreateGroupResponseSchema, bytes))).toEqual(["group.name"]);
  });

  it("names the field whose length runs past the end, and stops there", () => {
    // organization_id (1) is fine; name (2) says 16 bytes and has one.
    const bytes = Buffer.from([0x0a, 0x01, 0x41, 0x12, 0x10, 0x41]);
    expect(fieldsOf(binaryFieldFaults(CreateGroupRequestSchema, bytes))).toEqual(["name"]);
  });

  it("names nothing for a body that decodes, unknown fields included", () => {
    const good = toBinary(
      CreateGroupRequestSchema,
      create(CreateGroupRequestSchema, { organizationId: "org_x", name: "n" }),
    );
    const unknownField = Buffer.from([0xf8, 0x07, 0x01]); // field 127, varint 1
    expect(
      binaryFieldFaults(CreateGroupRequestSchema, Buffer.concat([good, unknownField])),
    ).toEqual([]);
  });
});

describe("jsonFieldFaults", () => {
  it("names every bad value and every unknown key, in the body's order", () => {
    const json = JSON.parse(
      '{"organizationId":"org_x","name":"\\ud800","limt":5,"description":"\\udc00"}',
    );
    const faults = jsonFieldFaults(CreateGroupRequestSchema, json);
    expect(fieldsOf(faults)).toEqual(["name", "limt", "description"]);
    expect(faults[1].description).toBe("is not a field of groups.v1.CreateGroupRequest");
  });

  it("takes proto names as well as JSON names", () => {
    expect(
      fieldsOf(jsonFieldFaults(CreateGroupRequestSchema, { organization_id: 7, name: "n" })),
    ).toEqual(["organization_id"]);
  });

  it("names each bad element of a list by its index", () => {
    const json = { organizationMembershipIds: ["om_a", 3, "om_c", null] };
    expect(fieldsOf(jsonFieldFaults(BatchAddGroupMembersRequestSchema, json))).toEqual([
      "organization_membership_ids[1]",
      "organization_membership_ids[3]",
    ]);
  });

  it("says an enum name the API lacks is not a known value", () => {
    const faults = jsonFieldFaults(ListGroupsRequestSchema, { order: "asc", limit: "ten" });
    expect(faults.map((f) => [f.field, f.description.split(":")[0]])).toEqual([
      ["order", "is not a known value"],
      ["limit", "is not a valid value"],
    ]);
  });

  it("walks into nested messages, but reads a well-known type whole", () => {
    expect(
      fieldsOf(jsonFieldFaults(CreateGroupResponseSchema, { group: { name: 5, color: "red" } })),
    ).toEqual(["group.name", "group.color"]);
    expect(
      fieldsOf(jsonFieldFaults(ListEventsRequestSchema, { rangeStart: "yesterday", limit: 5 })),
    ).toEqual(["range_start"]);
  });

  it("names nothing for a body that is not an object", () => {
    for (const json of [null, [], "text", 5]) {
      expect(jsonFieldFaults(CreateGroupRequestSchema, json)).toEqual([]);
    }
  });
});

describe("a hostile body is read again only so far", () => {
  /** `n` occurrences of organization_membership_ids (field 3), each one byte: `byte(i)`. */
  const ids = (n: number, byte: (i: number) => number) =>
    Buffer.concat(Array.from({ length: n }, (_, i) => Buffer.from([0x1a, 0x01, byte(i)])));

  it("stops at the violations one error carries", () => {
    const faults = binaryFieldFaults(
      BatchAddGroupMembersRequestSchema,
      ids(300_000, () => 0xff),
    );
    expect(faults).toHaveLength(MAX_FIELD_VIOLATIONS);
    const list = { organizationMembershipIds: Array.from({ length: 300_000 }, () => 1) };
    expect(jsonFieldFaults(BatchAddGroupMembersRequestSchema, list)).toHaveLength(
      MAX_FIELD_VIOLATIONS,
    );
  });

  it("stops after reading MAX_FIELDS_READ_AGAIN fields, naming what it found by then", () => {
    const late = MAX_FIELDS_READ_AGAIN + 10;
    const bytes = ids(late + 1, (i) => (i === 5 || i === late ? 0xff : 0x41));
    expect(fieldsOf(binaryFieldFaults(BatchAddGroupMembersRequestSchema, bytes))).toEqual([
      "organization_membership_ids[5]",
    ]);
    // In JSON the list as a whole is known to be bad: it is named when no element was reached.
    const list = Array.from({ length: late + 1 }, (_, i) => (i === late ? 1 : "om_x"));
    expect(
      fieldsOf(
        jsonFieldFaults(BatchAddGroupMembersRequestSchema, { organizationMembershipIds: list }),
      ),
    ).toEqual(["organization_membership_ids"]);
  });
});
