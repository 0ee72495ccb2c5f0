import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DomainError } from "../../server/src/domain/errors.js";
import { isId, newId } from "../../server/src/domain/ids.js";
import { parsePage } from "../../server/src/domain/pagination.js";
import { Violations } from "../../server/src/domain/validation.js";

const fields = (fn: () => void): string[] => {
  try {
    fn();
  } catch (err) {
    if (err instanceof DomainError) return err.fieldViolations.map((v) => v.field);
    throw err;
  }
  return [];
};

describe("ids", () => {
  it("mints ids that validate and sort in creation order", () => {
    const ids = Array.from({ length: 1000 }, () => newId("group"));
    expect(ids.every((id) => isId("group", id))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
  });

  it("rejects other shapes", () => {
    const good = newId("organization");
    for (const bad of [
      "",
      "org_",
      good.toLowerCase(),
      good.replace("org_", "om_"),
      `${good}0`,
      good.slice(0, -1) + "U",
    ]) {
      expect(isId("organization", bad), bad).toBe(false);
    }
  });
});

describe("text validation", () => {
  const name = (value: string) => () => {
    const v = new Violations();
    v.text("name", value, { min: 1, max: 256, trim: true });
    v.throwIfAny();
  };

  it("trims white space that is not a control character from the ends", () => {
    for (const padded of ["  Eng  ", "\u00a0Eng\u3000", "\u2003Eng"]) {
      let trimmed = "";
      expect(
        fields(() => {
          const v = new Violations();
          trimmed = v.text("name", padded, { min: 1, max: 256, trim: true });
          v.throwIfAny();
        }),
      ).toEqual([]);
      expect(trimmed).toBe("Eng");
    }
  });

  it("accepts any printable name of 1–256 code points", () => {
    fc.assert(
      fc.property(
        fc
          .string({ unit: "grapheme", minLength: 1, maxLength: 60 })
          .filter(
            (s) =>
              s.trim().length > 0 &&
              !/[\u0000-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/u.test(s),
          ),
        (s) => {
          expect(fields(name(s))).toEqual([]);
        },
      ),
    );
    expect(fields(name("😀".repeat(256)))).toEqual([]);
  });

  it("rejects empty, over-long, control and bidi-override names", () => {
    for (const bad of [
      "",
      "   ",
      "x".repeat(257),
      "a\u0000b",
      "a\u0007",
      "a\u0085",
      "\u202Eevil",
      "a\u2066b",
      "\ud800",
      // Control characters at the ends are refused too, not trimmed away.
      "\tEng",
      "Eng\r\n",
      "Eng\u000b",
      "\u0085Eng",
    ]) {
      expect(fields(name(bad)), JSON.stringify(bad)).toEqual(["name"]);
    }
  });
});

describe("parsePage", () => {
  const parse = (input: Partial<Parameters<typeof parsePage>[1]>) => {
    const v = new Violations();
    const page = parsePage(
      v,
      { limit: 0, before: "", after: "", order: undefined, ...input },
      "group",
    );
    v.throwIfAny();
    return page;
  };

  it("defaults to 10 newest first", () => {
    expect(parse({})).toEqual({ limit: 10, before: undefined, after: undefined, order: "desc" });
  });

  it("names each bad field", () => {
    const cursor = newId("group");
    expect(fields(() => parse({ limit: -1 }))).toEqual(["limit"]);
    expect(fields(() => parse({ limit: 1001 }))).toEqual(["limit"]);
    expect(fields(() => parse({ before: cursor, after: cursor }))).toEqual(["before"]);
    expect(fields(() => parse({ after: newId("organization") }))).toEqual(["after"]);
    expect(fields(() => parse({ order: "unknown(7)" }))).toEqual(["order"]);
    expect(parse({ limit: 1000 }).limit).toBe(1000);
  });
});
