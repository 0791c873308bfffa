// Chart.js with only the parts the dashboard draws, and its shared styling.
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement,
  LogarithmicScale, PointElement, ScatterController, Tooltip, type ChartConfiguration,
} from 'chart.js';

Chart.register(BarController, BarElement, CategoryScale, Legend, LinearScale, LineController, LineElement, LogarithmicScale, PointElement, ScatterController, Tooltip);
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.color = '#667085';
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;

export const COLORS = { ok: '#1a9e74', bad: '#d92d20', accent: '#2f6fde', muted: '#98a2b3', warn: '#e08a00', cal: 'rgba(102, 112, 133, 0.35)' };

export function makeChart(canvas: HTMLCanvasElement, config: ChartConfiguration): Chart {
  return new Chart(canvas, config);
}

export type { Chart };
