#!/usr/bin/env python3
"""A second, differently shaped event-history generator for checking `leadscore train` against
scikit-learn on data it was not designed around: other URL sections, heavy-tailed visit counts,
dwell times, weekly campaigns, a signup form with profile, and converters who keep using the
product after buying (post-conversion /app/onboarding views that must not leak).
Usage: alt_history.py OUT_DIR [SEED] [LEADS]  → OUT_DIR/events.ndjson, OUT_DIR/outcomes.csv
"""
import sys
import json, random, math, datetime as dt
out_dir = sys.argv[1]
random.seed(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
N = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
start=dt.datetime(2026,9,1,tzinfo=dt.timezone.utc)
def iso(t): return t.strftime("%Y-%m-%dT%H:%M:%SZ")
sections=[("/features/",1.0,0.6),("/pricing/plans",0.3,1.0),("/blog/",3.0,-0.1),("/integrations/",0.5,0.5),("/about",0.4,0.0),("/jobs",0.3,-0.8),("/docs/api/",0.6,0.4),("/security",0.2,0.7)]
titles=[("Software Engineer",0.0),("Senior Engineer",0.2),("Engineering Manager",0.5),("VP Engineering",0.9),("CTO",1.0),("Intern",-0.8),("Consultant",-0.2),("Product Manager",0.3)]
inds=["fintech","retail","health","gov","education","media"]
ev=[]; out=[]
eid=0
for i in range(N):
    lid=f"A{i:05d}"; z=random.gauss(0,1)
    t0=start+dt.timedelta(days=random.random()*50)
    w=[(s, b*math.exp(k*z)) for s,b,k in sections]
    tot=sum(x for _,x in w)
    nviews=max(1,int(random.expovariate(1/(3*math.exp(0.4*z)))))
    t=t0
    evs=[]
    for _ in range(nviews):
        r=random.random()*tot
        for s,x in w:
            r-=x
            if r<=0: break
        path=s+(f"p{random.randint(1,30)}" if s.endswith("/") else "")
        t=t+dt.timedelta(minutes=random.expovariate(1/600))
        evs.append({"type":"page_view","url":"https://acme.io"+path,"ts":iso(t),"duration_s":round(random.expovariate(1/(40*math.exp(0.3*z))),1)})
    for c in range(8):
        sent=start+dt.timedelta(days=7*c)
        if sent<t0: continue
        if random.random()<1/(1+math.exp(-(-0.5+0.8*z))):
            to=sent+dt.timedelta(hours=random.expovariate(1/5),seconds=10)
            evs.append({"type":"email_open","campaign_id":f"camp-{c}","sent_at":iso(sent),"ts":iso(to),"user_agent":"Mozilla"})
            if random.random()<1/(1+math.exp(-(-1+0.9*z))):
                evs.append({"type":"click","campaign_id":f"camp-{c}","sent_at":iso(sent),"ts":iso(to+dt.timedelta(seconds=30)),"url":"https://acme.io/pricing/plans?utm=camp"})
    ti=random.choices(titles,weights=[math.exp(k*z*0.7) for _,k in titles])[0]
    size=int(math.exp(random.gauss(4+0.4*z,1.2)))
    ind=random.choice(inds)
    fields={"job_title":ti[0],"company_size":size,"industry":ind,"email":f"u{i}@"+("gmail.com" if random.random()<0.4-0.1*z else f"co{i%500}.com")}
    evs.append({"type":"form_conversion","form_id":"signup","ts":iso(t0+dt.timedelta(minutes=5)),"fields":fields})
    if random.random()<1/(1+math.exp(-(-2+1.2*z))):
        evs.append({"type":"form_conversion","form_id":"talk-to-sales","offer_stage":"bofu","ts":iso(t+dt.timedelta(hours=2))})
    logit=-3+1.6*z+(0.6 if ind=="fintech" else 0)
    conv=random.random()<1/(1+math.exp(-logit))
    last=max(dt.datetime.fromisoformat(e["ts"].replace("Z","+00:00")) for e in evs)
    cat=None
    if conv:
        cat=last+dt.timedelta(days=random.expovariate(1/3))
        # post-conversion onboarding activity: must not leak
        for k in range(random.randint(3,10)):
            evs.append({"type":"page_view","url":"https://acme.io/app/onboarding","ts":iso(cat+dt.timedelta(hours=k+1)),"duration_s":120})
    for e in evs:
        eid+=1; e["event_id"]=f"x{eid}"; e["lead_id"]=lid
        ev.append(e)
    out.append((lid,int(conv),iso(cat) if cat else ""))
ev.sort(key=lambda e:e["ts"])
with open(out_dir + "/events.ndjson", "w") as f:
    for e in ev: f.write(json.dumps(e)+"\n")
with open(out_dir + "/outcomes.csv", "w") as f:
    f.write("lead_id,converted,converted_at\n")
    for o in out: f.write(",".join(map(str,o))+"\n")
print(f"{len(ev)} events, {N} leads, {sum(o[1] for o in out)} converted", file=sys.stderr)
