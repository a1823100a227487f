"""The "ML Pipelines" page of the Airflow UI (an ``external_views`` entry rendering ``/mlpipe/ui``).

A self-contained HTML page (no external assets: the api-server may have no internet) that reads our REST API
with the UI's session cookie: published pipelines with their parameters, endpoints with their versions, recent
runs with status, parameters, steps (reused ones marked) and metrics (plotted as inline SVG), and links to the
DAGs, their trigger form and the DAG runs. It computes no status itself: what the REST API answers comes from the
one rule of :mod:`airflow_mlpipe.contract.status`, which the SDK uses too.
"""

from __future__ import annotations

from typing import Any

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ML Pipelines - airflow-mlpipe</title>
<style>
 body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#1f2937}
 h1{font-size:20px} h2{font-size:16px;margin-top:24px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
 table{border-collapse:collapse;width:100%;font-size:13px} th,td{border-bottom:1px solid #f3f4f6;padding:4px 6px;
 text-align:left;vertical-align:top} th{background:#f9fafb} code{font-size:12px}
 .Finished{color:#047857;font-weight:600} .Failed{color:#b91c1c;font-weight:600} .Running{color:#1d4ed8}
 .Canceled{color:#b45309;font-weight:600}
 .NotStarted,.Queued,.Bypassed{color:#6b7280} .reused{background:#fef3c7;border-radius:3px;padding:0 4px;font-size:11px}
 .err{color:#b91c1c} svg{background:#fafafa;border:1px solid #e5e7eb}
</style></head>
<body>
<h1>ML Pipelines <small style="font-weight:normal;color:#6b7280">airflow-mlpipe</small></h1>
<div id="status">Loading…</div>
<h2>Published pipelines</h2><table id="pipelines"><thead><tr><th>Name</th><th>Version</th><th>Status</th>
<th>Parameters (defaults)</th><th>Steps</th><th>DAG</th><th>Id</th></tr></thead><tbody></tbody></table>
<h2>Pipeline endpoints</h2><table id="endpoints"><thead><tr><th>Name</th><th>Status</th><th>Default version</th>
<th>Versions</th></tr></thead><tbody></tbody></table>
<h2>Recent runs</h2><table id="runs"><thead><tr><th>Run</th><th>Experiment</th><th>Status</th><th>Parameters</th>
<th>Steps</th><th>Metrics</th><th>Created</th></tr></thead><tbody></tbody></table>
<script>
const API = new URL("api/v1/", window.location.href.replace(/\/ui\/?(\?.*)?$/, "/")).toString();
const ROOT = new URL("/", window.location.href).toString();
function esc(v){return String(v===null||v===undefined?"":v).replace(/[&<>"']/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));}
async function get(path){const r=await fetch(API+path,{credentials:"same-origin"});
 if(!r.ok){throw new Error(path+": HTTP "+r.status+" "+(await r.text()));} return r.json();}
function kv(o){return Object.entries(o||{}).map(([k,v])=>"<code>"+esc(k)+"="+esc(typeof v==="object"?JSON.stringify(v):v)+"</code>").join("<br>");}
function plot(name, values){
 const nums = values.filter(v=>typeof v==="number"); if(nums.length<1){return "";}
 const w=160,h=40,min=Math.min(...nums),max=Math.max(...nums),span=(max-min)||1;
 const pts=nums.map((v,i)=>((nums.length===1?w/2:i*(w-8)/(nums.length-1))+4)+","+(h-4-(v-min)/span*(h-8))).join(" ");
 const dots=nums.map((v,i)=>'<circle r="2" cx="'+((nums.length===1?w/2:i*(w-8)/(nums.length-1))+4)+'" cy="'+(h-4-(v-min)/span*(h-8))+'"/>').join("");
 return '<div><code>'+esc(name)+'</code> '+esc(nums[nums.length-1])+'<br><svg class="metric-plot" data-metric="'+esc(name)+'" width="'+w+'" height="'+h+'"><polyline fill="none" stroke="#2563eb" points="'+pts+'"/>'+dots+'</svg></div>';}
function metricsHtml(m){let out="";
 const all = Object.assign({}, m.Metrics||{}); for(const [step,ms] of Object.entries(m.Steps||{})){for(const [k,v] of Object.entries(ms||{})){all[step+"/"+k]=v;}}
 for(const [k,v] of Object.entries(all)){ if(Array.isArray(v)){out+=plot(k,v);} else if(typeof v==="number"){out+=plot(k,[v]);}
   else {out+="<div><code>"+esc(k)+"</code> "+esc(JSON.stringify(v))+"</div>";}}
 return out;}
async function load(){
 const [pipelines, endpoints, runs] = await Promise.all([get("pipelines?active_only=false"), get("endpoints?active_only=false"), get("runs?limit=20")]);
 document.querySelector("#pipelines tbody").innerHTML = pipelines.map(p=>"<tr data-pipeline-id='"+esc(p.Id)+"'><td>"+esc(p.Name)+"</td><td>"+esc(p.Version)+"</td><td>"+esc(p.EntityStatus)+"</td><td>"+kv(p.ParameterAssignments)+"</td><td>"+esc(p.TotalRunSteps)+"</td><td><a target='_top' href='"+ROOT+"dags/"+encodeURIComponent(p.DagId)+"'>"+esc(p.DagId)+"</a> (<a target='_top' href='"+ROOT+"dags/"+encodeURIComponent(p.DagId)+"/trigger'>trigger</a>)</td><td><code>"+esc(p.Id)+"</code></td></tr>").join("") || "<tr><td colspan=7>none</td></tr>";
 document.querySelector("#endpoints tbody").innerHTML = endpoints.map(e=>"<tr><td>"+esc(e.Name)+"</td><td>"+esc(e.EntityStatus)+"</td><td>"+esc(e.DefaultVersion)+"</td><td>"+e.PipelineVersionList.map(v=>"<code>"+esc(v.Version)+" → "+esc(v.PipelineId)+"</code>").join("<br>")+"</td></tr>").join("") || "<tr><td colspan=4>none</td></tr>";
 const rows = [];
 for(const r of runs){
   let steps=[], metrics={Metrics:{},Steps:{}};
   try{[steps, metrics] = await Promise.all([get("runs/"+encodeURIComponent(r.Id)+"/steps"), get("runs/"+encodeURIComponent(r.Id)+"/metrics")]);}catch(e){}
   const stepHtml = steps.map(s=>"<span class='"+esc(s.Status)+"'>"+esc(s.Name)+": "+esc(s.Status)+"</span>"+(s.Reused?" <span class='reused' title='reused from "+esc(s.ReusedRunId)+"'>reused</span>":"")).join("<br>");
   rows.push("<tr data-run-id='"+esc(r.Id)+"'><td><a target='_top' href='"+ROOT+"dags/"+encodeURIComponent(r.DagId)+"/runs/"+encodeURIComponent(r.DagRunId)+"'>"+esc(r.Id)+"</a><br><small>"+esc(r.DagId)+"</small></td><td>"+esc(r.RunHistoryExperimentName)+"</td><td class='run-status "+esc(r.Status.StatusCode)+"'>"+esc(r.Status.StatusCode)+"</td><td class='run-params'>"+kv(r.ParameterAssignments)+"</td><td>"+stepHtml+"</td><td>"+metricsHtml(metrics)+"</td><td>"+esc(r.Status.CreationTime)+"</td></tr>");
 }
 document.querySelector("#runs tbody").innerHTML = rows.join("") || "<tr><td colspan=7>none</td></tr>";
 document.getElementById("status").textContent = pipelines.length+" published pipelines, "+endpoints.length+" endpoints, "+runs.length+" recent runs";
 document.body.setAttribute("data-loaded","1");
}
load().catch(e=>{const s=document.getElementById("status"); s.className="err"; s.textContent=String(e); document.body.setAttribute("data-loaded","error");});
</script></body></html>
"""


def register_ui(app: Any) -> None:
    from fastapi.responses import HTMLResponse

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def mlpipe_ui_page() -> HTMLResponse:
        return HTMLResponse(PAGE)
