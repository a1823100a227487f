/** Display formatting of values, sizes, durations and times. */
import type { Json } from "./types";

/** A number with at most 6 significant digits (integers as they are). */
export function formatNumber(value: number): string {
  if (Number.isInteger(value) || !Number.isFinite(value)) {
    return String(value);
  }
  return String(Number(value.toPrecision(6)));
}

/** A JSON value as short text: strings as they are, numbers rounded, lists and objects as JSON. */
export function formatJson(value: Json | undefined): string {
  if (value === undefined || value === null) {
    return "—";
  }
  if (typeof value === "number") {
    return formatNumber(value);
  }
  if (typeof value === "string") {
    return value;
  }
  if (typeof value === "boolean") {
    return value ? "true" : "false";
  }
  if (Array.isArray(value) && value.every((item) => typeof item === "number")) {
    return value.map((item) => formatNumber(item)).join(", ");
  }
  return JSON.stringify(value);
}

const SIZE_UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

export function formatBytes(size: number | null): string {
  if (size === null) {
    return "—";
  }
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${size} B` : `${value.toFixed(1)} ${SIZE_UNITS[unit]}`;
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null) {
    return "—";
  }
  if (seconds < 60) {
    return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  }
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const rest = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours} h ${String(minutes).padStart(2, "0")} min` : `${minutes} min ${rest} s`;
}

/** An ISO-8601 time in the browser's locale and time zone. */
export function formatTime(iso: string | null): string {
  if (iso === null) {
    return "—";
  }
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : time.toLocaleString();
}

export function formatPercent(share: number | null): string {
  return share === null ? "—" : `${Math.round(share * 1000) / 10} %`;
}
