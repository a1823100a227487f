/**
 * A plain SVG line chart: one or more series of points, axes with tick labels, a title on every point.
 * Colors are Chakra semantic tokens (through `color` + `currentColor`), so light and dark mode both work.
 */
import { Box, chakra, HStack, Stack, Text } from "@chakra-ui/react";

import { formatNumber } from "../format";

export interface ChartPoint {
  x: number;
  y: number;
  /** the point's tooltip */
  label: string;
}

export interface ChartSeries {
  name: string;
  points: ChartPoint[];
}

export interface LineChartProps {
  series: ChartSeries[];
  /** the chart's accessible name */
  title: string;
  xLabel: string;
  yLabel: string;
  testId: string;
  pointTestId: string;
  /** x values are whole numbers (run order, iteration): ticks on whole numbers only */
  integerX?: boolean;
  xTickLabel?: (x: number) => string;
}

const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { bottom: 44, left: 64, right: 16, top: 16 };
const SERIES_COLORS = ["blue.solid", "orange.solid", "green.solid", "purple.solid", "red.solid", "teal.solid",
  "pink.solid", "cyan.solid"];
const TICKS = 5;

/** Evenly spaced "nice" tick values (steps of 1, 2 or 5 times a power of ten) covering [min, max]. */
export function niceTicks(min: number, max: number, integer = false): number[] {
  const [low, high] = min === max ? [min - (Math.abs(min) * 0.1 || 1), max + (Math.abs(max) * 0.1 || 1)] : [min, max];
  const rough = (high - low) / TICKS;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const normalized = rough / magnitude;
  const factor = normalized < 1.5 ? 1 : normalized < 3 ? 2 : normalized < 7 ? 5 : 10;
  const step = integer ? Math.max(1, Math.round(factor * magnitude)) : factor * magnitude;
  const first = Math.floor(low / step);
  const last = Math.ceil(high / step);

  return Array.from({ length: last - first + 1 }, (_, index) => Number(((first + index) * step).toPrecision(12)));
}

/** Maps [low, high] onto [from, to]. */
function scale(low: number, high: number, from: number, to: number): (value: number) => number {
  return (value) => from + ((value - low) / (high - low)) * (to - from);
}

export function LineChart({ integerX = false, pointTestId, series, testId, title, xLabel, xTickLabel, yLabel }:
  LineChartProps) {
  const points = series.flatMap((item) => item.points);
  const xs = points.map((point) => point.x);
  const ys = points.map((point) => point.y);
  const [minX, maxX] = [Math.min(...xs), Math.max(...xs)];
  const xTicks = niceTicks(minX, maxX, integerX);
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys));
  // whole-number x (runs, iterations) gets half a step of room so the first and last points sit off the axes
  const xPad = integerX ? 0.5 : 0;
  const toX = scale((xTicks[0] ?? minX) - xPad, (xTicks[xTicks.length - 1] ?? maxX) + xPad, MARGIN.left,
    WIDTH - MARGIN.right);
  const toY = scale(yTicks[0] ?? 0, yTicks[yTicks.length - 1] ?? 1, HEIGHT - MARGIN.bottom, MARGIN.top);
  const bottom = HEIGHT - MARGIN.bottom;

  return (
    <Stack gap={1}>
      {series.length > 1 ? (
        <HStack flexWrap="wrap" fontSize="xs" gap={3}>
          {series.map((item, index) => (
            <HStack gap={1} key={`${index}:${item.name}`}>
              <Box aria-hidden bg={SERIES_COLORS[index % SERIES_COLORS.length]} h={3} rounded="sm" w={3} />
              <Text>{item.name}</Text>
            </HStack>
          ))}
        </HStack>
      ) : undefined}
      <chakra.svg aria-label={title} data-testid={testId} h="auto" maxW="3xl" role="img"
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`} w="full">
        <title>{title}</title>
        <chakra.g color="border.muted">
          {yTicks.map((tick) => (
            <line key={tick} stroke="currentColor" x1={MARGIN.left} x2={WIDTH - MARGIN.right} y1={toY(tick)}
              y2={toY(tick)} />
          ))}
        </chakra.g>
        <chakra.g color="border.emphasized">
          <line stroke="currentColor" x1={MARGIN.left} x2={WIDTH - MARGIN.right} y1={bottom} y2={bottom} />
          <line stroke="currentColor" x1={MARGIN.left} x2={MARGIN.left} y1={MARGIN.top} y2={bottom} />
        </chakra.g>
        <chakra.g color="fg.muted" fontSize="xs">
          {xTicks.filter((tick) => tick >= minX && tick <= maxX).map((tick) => (
            <text fill="currentColor" key={tick} textAnchor="middle" x={toX(tick)} y={bottom + 16}>
              {xTickLabel ? xTickLabel(tick) : formatNumber(tick)}
            </text>
          ))}
          {yTicks.map((tick) => (
            <text dominantBaseline="middle" fill="currentColor" key={tick} textAnchor="end" x={MARGIN.left - 6}
              y={toY(tick)}>
              {formatNumber(tick)}
            </text>
          ))}
          <text fill="currentColor" textAnchor="middle" x={(MARGIN.left + WIDTH - MARGIN.right) / 2} y={HEIGHT - 6}>
            {xLabel}
          </text>
          <text fill="currentColor" textAnchor="middle" transform={`translate(14 ${(MARGIN.top + bottom) / 2}) rotate(-90)`}>
            {yLabel}
          </text>
        </chakra.g>
        {series.map((item, index) => (
          <chakra.g color={SERIES_COLORS[index % SERIES_COLORS.length]} key={`${index}:${item.name}`}>
            {item.points.length > 1 ? (
              <polyline fill="none" points={item.points.map((point) => `${toX(point.x)},${toY(point.y)}`).join(" ")}
                stroke="currentColor" strokeWidth={2} />
            ) : undefined}
            {item.points.map((point, pointIndex) => (
              <circle cx={toX(point.x)} cy={toY(point.y)} data-testid={pointTestId} fill="currentColor"
                key={pointIndex} r={4}>
                <title>{point.label}</title>
              </circle>
            ))}
          </chakra.g>
        ))}
      </chakra.svg>
    </Stack>
  );
}
