/**
 * In-app paths of Airflow 3.3 UI pages (react-router resolves them against the host's basename).
 * Ids stay as the Airflow UI writes them (e.g. `scheduled__2024-05-01T06:00:00+00:00`); only the characters that
 * would end or split a path segment are escaped, so an id is always one segment.
 */

function segment(id: string): string {
  return id.replace(/[%/?#\\]/gu, (character) => encodeURIComponent(character));
}

export function dagPath(dagId: string): string {
  return `/dags/${segment(dagId)}`;
}

export function dagRunPath(dagId: string, dagRunId: string): string {
  return `${dagPath(dagId)}/runs/${segment(dagRunId)}`;
}

export function taskInstancePath(dagId: string, dagRunId: string, taskId: string): string {
  return `${dagRunPath(dagId, dagRunId)}/tasks/${segment(taskId)}`;
}

/** the run's Pipeline tab (this plugin's `dag_run` view) */
export function pipelineTabPath(dagId: string, dagRunId: string): string {
  return `${dagRunPath(dagId, dagRunId)}/plugin/mlpipe-pipeline`;
}

/** the task instance's Step tab (this plugin's `task_instance` view) */
export function stepTabPath(dagId: string, dagRunId: string, taskId: string): string {
  return `${taskInstancePath(dagId, dagRunId, taskId)}/plugin/mlpipe-step`;
}

/** the DAG's Experiment tab (this plugin's `dag` view) */
export function experimentTabPath(dagId: string): string {
  return `${dagPath(dagId)}/plugin/mlpipe-experiment`;
}

/** the ML Pipelines page (this plugin's `nav` view) */
export const PUBLISHED_PATH = "/plugin/mlpipe";
